"""A chat peer over TCP for the browser chat test (Debian's slixmpp).

Usage: peer.py HOST PORT JID PASSWORD CA_FILE
Prints "ready" once online, then one line per message received:
"got FROM LENGTH TEXT-START" (TEXT-START: the first 60 characters, no
line breaks). Reads commands on stdin: "send JID TEXT" (TEXT may be
"@10000" for 10,000 characters of 'x'). Ends on EOF or after 5 minutes."""
import asyncio
import sys

import slixmpp


async def main():
    host, port, jid, password, ca = sys.argv[1:6]
    c = slixmpp.ClientXMPP(jid, password, sasl_mech="SCRAM-SHA-256")
    c.ca_certs = ca
    fm = c["feature_mechanisms"]
    orig = fm.sasl_callback

    def creds(required, optional):
        # slixmpp knows only tls-unique (none in TLS 1.3): no channel binding.
        r = orig(required, optional)
        if "channel_binding" in r:
            r["channel_binding"] = None
        return r
    fm.sasl_callback = creds
    ready = asyncio.get_event_loop().create_future()

    def start(_):
        c.send_presence()
        if not ready.done():
            ready.set_result(True)

    def msg(m):
        if m["type"] in ("chat", "normal") and m["body"]:
            b = m["body"]
            print("got %s %d %s" % (m["from"].bare, len(b), b[:60].replace("\n", " ")), flush=True)
    c.add_event_handler("session_start", start)
    c.add_event_handler("message", msg)
    c.add_event_handler("failed_all_auth", lambda _: print("refused", flush=True))
    c.connect((host, int(port)), force_starttls=True)
    await asyncio.wait_for(ready, 30)
    print("ready", flush=True)
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands():
        while True:
            line = await reader.readline()
            if not line:
                return
            parts = line.decode().rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[0] == "send":
                text = "x" * int(parts[2][1:]) if parts[2].startswith("@") else parts[2]
                c.send_message(mto=parts[1], mbody=text, mtype="chat")
    try:
        await asyncio.wait_for(commands(), 300)
    except asyncio.TimeoutError:
        pass
    c.disconnect(wait=1.0)
    await asyncio.sleep(0.2)


asyncio.run(main())
