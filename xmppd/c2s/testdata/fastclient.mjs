// npm @xmpp/client 0.14.0 (pinned in setup-ui/e2e/package.json) against
// xmppd's SASL2, Bind 2 and FAST, for xmppd/c2s's e2e test.
//
//   node fastclient.mjs SERVICE DOMAIN USER PASSWORD PEER
//
// First login: SASL2 with the password (SCRAM-SHA-1, the only SCRAM this
// client has), Bind 2, a FAST token requested inline. Second login: a new
// client for the same install (same user-agent id) with a WRONG password
// and the token, so only FAST can get it in. Each time it prints
// "online JID MECHANISMS" (the <authenticate/> mechanisms it sent), sends
// PEER "ping N" and waits for "echo: ping N". Prints "done" and exits 0.
import { client, xml } from "@xmpp/client";
import { randomUUID } from "node:crypto";

const [service, domain, username, password, peer] = process.argv.slice(2);
const id = randomUUID();
const ua = () =>
  xml("user-agent", { id }, xml("software", {}, "hearth-e2e"), xml("device", {}, "node"));

setTimeout(() => {
  console.log("timeout");
  process.exit(2);
}, 60000);

let token = null;

async function session(n, pw) {
  const x = client({ service, domain, username, password: pw, resource: "node", userAgent: ua() });
  x.fast.saveToken = async (t) => {
    token = t;
    console.log(`token ${t.mechanism} ${t.expiry}`);
  };
  x.fast.fetchToken = async () => token;
  const mechs = [];
  let binds = 0;
  x.on("send", (el) => {
    if (el.is("authenticate")) mechs.push(el.attrs.mechanism);
    if (el.is("iq") && el.getChild("bind")) binds++;
  });
  x.on("error", (err) => console.log("error " + err.message));
  const echoed = new Promise((resolve) => {
    x.on("stanza", (st) => {
      if (st.is("message") && st.getChildText("body") === `echo: ping ${n}`) resolve();
    });
  });
  const online = new Promise((resolve) => x.on("online", resolve));
  await x.start();
  const address = await online;
  console.log(`online ${address} ${mechs.join(",")} iq-binds=${binds}`);
  await x.send(xml("presence"));
  await x.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, `ping ${n}`)));
  await echoed;
  console.log(`echo ${n}`);
  await x.stop();
}

await session(1, password);
if (!token) {
  console.log("no token");
  process.exit(1);
}
await session(2, "not-the-password");
console.log("done");
process.exit(0);
