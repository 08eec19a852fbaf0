#!/usr/bin/python3
"""Asks the server for its external services (XEP-0215, urn:xmpp:extdisco:2)
the way a calling app does, with a raw iq from slixmpp (Debian's
python3-slixmpp has no XEP-0215 plugin). Run by coturn_e2e_test.go with
/usr/bin/python3. Prints one line "SERVICES <json list>" per account and
"OK", or "FAIL: ..." with the recent XML and exits 1.
"""

import json
import os
import sys

from slixmpp.xmlstream import ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, parser, run  # noqa: E402

NS = "urn:xmpp:extdisco:2"


class Client(slixtest.Client):
    def __init__(self, args, user, password):
        super().__init__("%s@%s/call" % (user, args.domain), password, args.ca)

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
        await c.start(args.port)
        print("SERVICES %s %s" % (user, json.dumps(await c.services())))
        c.disconnect()


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--user", action="append", required=True, help="name:password")
    run(scenario, ap.parse_args(), lines=60)
