// A real XMPP-over-WebSocket peer for xmppd/ws's e2e test: npm
// @xmpp/client 0.14.0 (pinned in setup-ui/e2e/package.json), run with
// NODE_PATH pointing at the installed node_modules.
//
//   node wsclient.mjs URL DOMAIN USER PASSWORD PEER BODY_BYTES
//
// Logs in over the WebSocket at URL (SCRAM: no PLAIN over plain HTTP),
// prints "online JID", sends PEER one chat message of BODY_BYTES bytes
// (pattern(n)), and waits for PEER's answer of the same size and pattern:
// prints "got N ok|bad" and exits 0 only if it arrived whole.
import { client, xml } from "@xmpp/client";

const [url, domain, username, password, peer, n] = process.argv.slice(2);
const size = Number(n);

// The same pattern as wspeer.py: digits with a line number every 100
// bytes, so a lost or duplicated chunk shows.
export function pattern(size) {
  let s = "";
  for (let i = 0; s.length < size; i++) {
    s += ("" + i).padStart(6, "0") + "-".repeat(93) + "\n";
  }
  return s.slice(0, size);
}

const xmpp = client({ service: url, domain, username, password, resource: "node" });
xmpp.on("error", (err) => {
  console.log("error " + err.message);
});
const timer = setTimeout(() => {
  console.log("timeout");
  process.exit(2);
}, 60000);
xmpp.on("stanza", async (st) => {
  if (!st.is("message")) return;
  const body = st.getChildText("body");
  if (body == null) return;
  const ok = body === pattern(size);
  console.log(`got ${body.length} ${ok ? "ok" : "bad"}`);
  clearTimeout(timer);
  await xmpp.stop();
  process.exit(ok ? 0 : 1);
});
xmpp.on("online", async (address) => {
  console.log("online " + address.toString());
  await xmpp.send(xml("presence"));
  await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, pattern(size))));
});
await xmpp.start();
