#!/usr/bin/python3
"""A push notification from Hearth to an app server on another domain,
across federation. Run by xmppd/s2s/push_remote_e2e_test.go with Debian's
/usr/bin/python3 (python3-slixmpp).

The app server is slixmpp's ComponentXMPP as push.prosody.test, connected
(XEP-0114) to Debian's prosody; Hearth (hearth.test) reaches it only over
s2s; it, the enable iq (slixmpp 1.8 has no xep_0357 plugin) and the check
of a publish are mod/push/testdata/push_appserver.py's. alice's phone
(slixmpp with XEP-0198 resumption) enables push with it and loses its
connection; once the test (asked on stdout, answering on stdin) sees her
session hibernating, bob sends her a message. The app server must get
the publish from alice@hearth.test to her node, with the publish-options
secret and a summary (message count, sender) but not the body.

Prints "OK" and exits 0, or "FAIL: ..." with the recent log and exits 1.
"""

import asyncio
import os
import sys
import xml.etree.ElementTree as ET

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "../../internal/xmpptest"))
sys.path.insert(0, os.path.join(here, "../../mod/push/testdata"))
import slixtest  # noqa: E402
from push_appserver import AppComponent, answer, check, enable_push  # noqa: E402
from slixtest import Fail, parser, run  # noqa: E402

TIMEOUT = 30


class Phone(slixtest.Client):
    def __init__(self, jid, pw, ca, port):
        super().__init__(jid, pw, ca, addr=("127.0.0.1", port), timeout=TIMEOUT)

    async def login(self):
        await self.start()  # STARTTLS
        self.send_presence()


async def scenario(a):
    app = AppComponent(a.app, a.secret, a.component)
    await app.login(timeout=TIMEOUT)

    bob = Phone("bob@%s/e2e" % a.domain, "bob-pw", a.ca, a.port)
    await bob.login()
    alice = Phone("alice@%s/phone" % a.domain, "alice-pw", a.ca, a.port)
    alice.register_plugin("xep_0198")
    await alice.login()
    await enable_push(alice, a.app, "alice-phone", TIMEOUT)
    if not alice["xep_0198"].sm_id:
        raise Fail("no resumable stream management")
    alice.abort()  # the network goes: no closing tag
    await asyncio.sleep(0)
    print("HIBERNATING? alice", flush=True)
    if (await answer()) != "yes":
        raise Fail("alice's session did not hibernate")
    bob.send_message(mto="alice@" + a.domain, mbody="the body stays home", mtype="chat")
    x = await app.next("alice's message", TIMEOUT)
    check(x, "alice@" + a.domain, "alice-phone", str(bob.boundjid))
    if "the body stays home" in ET.tostring(x, encoding="unicode"):
        raise Fail("the body reached the app server")
    bob.disconnect()
    app.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    ap = parser()  # --port: Hearth's c2s port (STARTTLS here)
    ap.add_argument("--app", required=True, help="the app server's component JID")
    ap.add_argument("--component", type=int, required=True, help="prosody's XEP-0114 port")
    ap.add_argument("--secret", required=True)
    run(scenario, ap.parse_args(), timeout=90)
