#!/usr/bin/python3
"""Asks the server for its external services (XEP-0215, urn:xmpp:extdisco:2)
the way a calling app does, with a raw iq from slixmpp (Debian's
python3-slixmpp has no XEP-0215 plugin). Run by coturn_e2e_test.go with
/usr/bin/python3. Prints one line "SERVICES <json list>" per account and
"OK", or "FAIL: ..." with the recent XML and exits 1.
"""

import argparse
import asyncio
import collections
import json
import logging
import sys

import slixmpp
from slixmpp.xmlstream import ET

NS = "urn:xmpp:extdisco:2"
TIMEOUT = 10
LOG = collections.deque(maxlen=60)


class Keep(logging.Handler):
    def emit(self, record):
        LOG.append(self.format(record))


class Fail(Exception):
    pass


class Client(slixmpp.ClientXMPP):
    def __init__(self, args, user, password):
        super().__init__("%s@%s/call" % (user, args.domain), password, sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        # slixmpp only knows tls-unique, which TLS 1.3 lacks: log in
        # without channel binding, as many clients do.
        fm = self["feature_mechanisms"]
        orig = fm.sasl_callback

        def creds(required, optional):
            r = orig(required, optional)
            if "channel_binding" in r:
                r["channel_binding"] = None
            return r
        fm.sasl_callback = creds

    async def login(self, port):
        started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        self.add_event_handler("failed_all_auth", lambda _: started.done() or started.set_exception(Fail("auth failed")))
        self.connect(("127.0.0.1", port), use_ssl=True, force_starttls=False, disable_starttls=True)
        await asyncio.wait_for(started, TIMEOUT)

    async def services(self):
        iq = self.make_iq_get(ito=self.boundjid.domain)
        iq.append(ET.fromstring("<services xmlns='%s'/>" % NS))
        res = await iq.send(timeout=TIMEOUT)
        el = res.xml.find("{%s}services" % NS)
        if el is None:
            raise Fail("no <services/> in %s" % res)
        return [dict(s.attrib) for s in el.findall("{%s}service" % NS)]


async def scenario(args):
    for user, pw in ((u.split(":", 1)) for u in args.user):
        c = Client(args, user, pw)
        await c.login(args.port)
        print("SERVICES %s %s" % (user, json.dumps(await c.services())))
        c.disconnect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--user", action="append", required=True, help="name:password")
    args = ap.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(args), 60))
    except Exception as e:
        print("FAIL: %s: %s" % (type(e).__name__, e))
        print("\n".join(LOG))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
