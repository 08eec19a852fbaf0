"""Debian's slixmpp (SASL1, SCRAM-SHA-256) as the peer of xmppd/c2s's
SASL2/FAST e2e test.

  peer.py HOST PORT JID PASSWORD CA COUNT

Prints "ready" once logged in; answers each chat message with
"echo: BODY" and prints "got BODY FROM"; exits after COUNT (90 s at most)."""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/xmpptest"))
from slixtest import Client  # noqa: E402


def say(*a):
    print(*a, flush=True)


async def main():
    host, port, jid, password, ca, count = sys.argv[1:7]
    left = int(count)
    c = Client(jid, password, ca, timeout=30, addr=(host, int(port)))
    done = asyncio.get_event_loop().create_future()

    def on_message(msg):
        nonlocal left
        if msg["type"] in ("chat", "normal") and msg["body"] and not done.done():
            say("got", msg["body"], msg["from"])
            c.send_message(mto=msg["from"], mbody="echo: " + msg["body"], mtype="chat")
            left -= 1
            if left == 0:
                done.set_result(True)
    c.add_event_handler("message", on_message)
    await c.start()  # STARTTLS
    c.send_presence()
    say("ready")
    try:
        await asyncio.wait_for(done, 90)
    except asyncio.TimeoutError:
        say("timeout")
    c.disconnect()
    await c.disconnected


asyncio.run(main())
