"""Debian's slixmpp over TCP as the peer of xmppd/ws's e2e test.

  wspeer.py HOST PORT JID PASSWORD CA BODY_BYTES

Prints "ready" once logged in; for the first chat message prints
"got N ok|bad FROM" (ok: BODY_BYTES bytes of the shared pattern, whole),
answers its sender with the same pattern, and exits (90 s at most)."""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/xmpptest"))
from slixtest import Client  # noqa: E402


def pattern(size):
    out, i = [], 0
    while sum(map(len, out)) < size:
        out.append(str(i).zfill(6) + "-" * 93 + "\n")
        i += 1
    return "".join(out)[:size]


def say(*a):
    print(*a, flush=True)


async def main():
    host, port, jid, password, ca, n = sys.argv[1:7]
    size = int(n)
    c = Client(jid, password, ca, timeout=30, addr=(host, int(port)))
    done = asyncio.get_event_loop().create_future()

    def on_message(msg):
        if msg["type"] in ("chat", "normal") and msg["body"] and not done.done():
            body = msg["body"]
            say("got", len(body), "ok" if body == pattern(size) else "bad", msg["from"])
            c.send_message(mto=msg["from"], mbody=pattern(size), mtype="chat")
            done.set_result(True)
    c.add_event_handler("message", on_message)
    await c.start()  # STARTTLS
    c.send_presence()
    say("ready")
    try:
        await asyncio.wait_for(done, 90)
    except asyncio.TimeoutError:
        say("timeout")
    # disconnect() waits for the send queue: the answer leaves first.
    c.disconnect()
    await c.disconnected


asyncio.run(main())
