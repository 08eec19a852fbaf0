#!/usr/bin/python3
"""Asks upload.<domain> for one slot with slixmpp's xep_0363 plugin and
prints its PUT URL (for rss_e2e_test.go, which PUTs to a real xmppd
process and watches its memory). Usage: slot.py JID PASSWORD PORT CA
FILENAME SIZE CONTENT-TYPE."""

import asyncio
import sys

import slixmpp


async def main(jid, password, port, ca, name, size, ctype):
    c = slixmpp.ClientXMPP(jid + "/rss", password, sasl_mech="SCRAM-SHA-256")
    c.register_plugin("xep_0363")
    c.ca_certs = ca
    fm = c["feature_mechanisms"]
    orig = fm.sasl_callback

    def creds(required, optional):
        # slixmpp 1.8 only knows tls-unique, which TLS 1.3 lacks.
        r = orig(required, optional)
        if "channel_binding" in r:
            r["channel_binding"] = None
        return r
    fm.sasl_callback = creds
    started = asyncio.get_event_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    c.connect(("127.0.0.1", int(port)), use_ssl=True, disable_starttls=True, force_starttls=False)
    await asyncio.wait_for(started, 20)
    iq = await c["xep_0363"].request_slot("upload." + jid.split("@")[1], name, int(size), ctype, timeout=20)
    print("PUT " + iq["http_upload_slot"]["put"]["url"])
    c.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:8]), 60))
