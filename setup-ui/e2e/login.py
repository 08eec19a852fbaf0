"""Log in with Debian's slixmpp: prints "ok" on a session, "refused" on a
SASL failure. Usage: login.py HOST PORT JID PASSWORD CA_FILE"""
import asyncio
import sys

import slixmpp


async def main():
    host, port, jid, password, ca = sys.argv[1:6]
    c = slixmpp.ClientXMPP(jid, password, sasl_mech="SCRAM-SHA-256")
    c.ca_certs = ca
    # slixmpp knows only tls-unique (not defined for TLS 1.3): log in as a
    # client without channel binding (GS2 flag "n"), else forcing plain
    # SCRAM while the server offers -PLUS sends "y", which must be refused.
    fm = c["feature_mechanisms"]
    orig = fm.sasl_callback

    def creds(required, optional):
        r = orig(required, optional)
        if "channel_binding" in r:
            r["channel_binding"] = None
        return r
    fm.sasl_callback = creds
    done = asyncio.get_event_loop().create_future()

    def settle(v):
        if not done.done():
            done.set_result(v)
    c.add_event_handler("session_start", lambda _: settle("ok"))
    c.add_event_handler("failed_auth", lambda _: settle("refused"))
    c.add_event_handler("failed_all_auth", lambda _: settle("refused"))
    c.add_event_handler("connection_failed", lambda e: settle("connection failed: %s" % e))
    c.add_event_handler("ssl_invalid_chain", lambda e: settle("bad certificate: %s" % e))
    c.connect((host, int(port)), force_starttls=True)
    try:
        r = await asyncio.wait_for(done, 30)
    except asyncio.TimeoutError:
        r = "timeout"
    print(r)
    c.disconnect(wait=1.0)
    await asyncio.sleep(0.2)


asyncio.run(main())
