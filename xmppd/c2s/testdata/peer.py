"""Debian's slixmpp (SASL1, SCRAM-SHA-256) as the peer of xmppd/c2s's
SASL2/FAST e2e test.

  peer.py HOST PORT JID PASSWORD CA COUNT

Prints "ready" once logged in; answers each chat message with
"echo: BODY" and prints "got BODY FROM"; exits after COUNT (90 s at most)."""
import asyncio
import sys

import slixmpp


def say(*a):
    print(*a, flush=True)


async def main():
    host, port, jid, password, ca, count = sys.argv[1:7]
    left = int(count)
    c = slixmpp.ClientXMPP(jid, password, sasl_mech="SCRAM-SHA-256")
    c.ca_certs = ca
    # No channel binding: Debian's slixmpp knows only tls-unique.
    fm = c["feature_mechanisms"]
    orig = fm.sasl_callback

    def creds(required, optional):
        r = orig(required, optional)
        if "channel_binding" in r:
            r["channel_binding"] = None
        return r
    fm.sasl_callback = creds
    loop = asyncio.get_event_loop()
    started, done = loop.create_future(), loop.create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    c.add_event_handler("failed_all_auth", lambda _: started.done() or started.set_exception(RuntimeError("auth refused")))

    def on_message(msg):
        nonlocal left
        if msg["type"] in ("chat", "normal") and msg["body"] and not done.done():
            say("got", msg["body"], msg["from"])
            c.send_message(mto=msg["from"], mbody="echo: " + msg["body"], mtype="chat")
            left -= 1
            if left == 0:
                done.set_result(True)
    c.add_event_handler("message", on_message)
    c.connect((host, int(port)), force_starttls=True)
    await asyncio.wait_for(started, 30)
    c.send_presence()
    say("ready")
    try:
        await asyncio.wait_for(done, 90)
    except asyncio.TimeoutError:
        say("timeout")
    c.disconnect()
    await c.disconnected


asyncio.run(main())
