#!/usr/bin/python3
"""A push notification from Hearth to an app server on another domain,
across federation. Run by xmppd/s2s/push_remote_e2e_test.go with Debian's
/usr/bin/python3 (python3-slixmpp).

The app server is slixmpp's ComponentXMPP as push.prosody.test, connected
(XEP-0114) to Debian's prosody; Hearth (hearth.test) reaches it only over
s2s. alice's phone (slixmpp with XEP-0198 resumption) enables push with it
(slixmpp 1.8 has no xep_0357 plugin: the iq is built here) and loses its
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

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import Fail, parser, run  # noqa: E402

TIMEOUT = 30
NS = "urn:xmpp:push:0"
PUBSUB = "http://jabber.org/protocol/pubsub"
DATA = "jabber:x:data"


class Phone(slixtest.Client):
    def __init__(self, jid, pw, ca, port):
        super().__init__(jid, pw, ca, addr=("127.0.0.1", port), timeout=TIMEOUT)

    async def login(self):
        await self.start()  # STARTTLS
        self.send_presence()


class AppServer(slixmpp.ComponentXMPP):
    """Says it is a push service and records and answers publishes."""

    def __init__(self, jid, secret, port):
        super().__init__(jid, secret, "127.0.0.1", port)
        self.register_plugin("xep_0030")
        self["xep_0030"].add_identity(category="pubsub", itype="push", name="e2e app server")
        self.pushes = asyncio.Queue()
        self.register_handler(Callback("push publish", MatchXPath("{%s}iq/{%s}pubsub" % (self.default_ns, PUBSUB)), self.publish))

    def publish(self, iq):
        if iq["type"] != "set":
            return
        self.pushes.put_nowait(iq.xml)
        iq.reply().send()


def check(x, want_from, want_node, want_sender):
    frm = x.get("from")
    pub = x.find("{%s}pubsub/{%s}publish" % (PUBSUB, PUBSUB))
    form = x.find("{%s}pubsub/{%s}publish/{%s}item/{%s}notification/{%s}x" % (PUBSUB, PUBSUB, PUBSUB, NS, DATA))
    opts = x.find("{%s}pubsub/{%s}publish-options/{%s}x" % (PUBSUB, PUBSUB, DATA))
    fields = {f.get("var"): f.findtext("{%s}value" % DATA) for f in (form if form is not None else [])}
    secret = {f.get("var"): f.findtext("{%s}value" % DATA) for f in (opts if opts is not None else [])}.get("secret")
    node = pub.get("node") if pub is not None else None
    if frm != want_from or node != want_node or secret != "s3cr3t":
        raise Fail("publish from %s to node %s with secret %s: want %s, %s, s3cr3t" % (frm, node, secret, want_from, want_node))
    if fields.get("FORM_TYPE") != "urn:xmpp:push:summary" or fields.get("message-count") != "1" or \
            fields.get("last-message-sender") != want_sender or "last-message-body" in fields:
        raise Fail("summary %s" % fields)
    if "the body stays home" in ET.tostring(x, encoding="unicode"):
        raise Fail("the body reached the app server")


async def answer():
    line = await asyncio.get_event_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


async def scenario(a):
    app = AppServer(a.app, a.secret, a.component)
    handshake = asyncio.get_event_loop().create_future()
    app.add_event_handler("session_start", lambda _: handshake.done() or handshake.set_result(True))
    app.connect()
    try:
        await asyncio.wait_for(handshake, TIMEOUT)
    except asyncio.TimeoutError:
        raise Fail("component %s: no session" % a.app)

    bob = Phone("bob@%s/e2e" % a.domain, "bob-pw", a.ca, a.port)
    await bob.login()
    alice = Phone("alice@%s/phone" % a.domain, "alice-pw", a.ca, a.port)
    alice.register_plugin("xep_0198")
    await alice.login()
    iq = alice.Iq()
    iq["type"] = "set"
    iq.append(ET.fromstring(
        "<enable xmlns='%s' jid='%s' node='alice-phone'>"
        "<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>"
        "http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='secret'><value>s3cr3t</value></field></x></enable>" % (NS, a.app, DATA)))
    await iq.send(timeout=TIMEOUT)
    if not alice["xep_0198"].sm_id:
        raise Fail("no resumable stream management")
    alice.abort()  # the network goes: no closing tag
    await asyncio.sleep(0)
    print("HIBERNATING? alice", flush=True)
    if (await answer()) != "yes":
        raise Fail("alice's session did not hibernate")
    bob.send_message(mto="alice@" + a.domain, mbody="the body stays home", mtype="chat")
    try:
        x = await asyncio.wait_for(app.pushes.get(), TIMEOUT)
    except asyncio.TimeoutError:
        raise Fail("no publish reached the app server")
    check(x, "alice@" + a.domain, "alice-phone", str(bob.boundjid))
    bob.disconnect()
    app.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    ap = parser()  # --port: Hearth's c2s port (STARTTLS here)
    ap.add_argument("--app", required=True, help="the app server's component JID")
    ap.add_argument("--component", type=int, required=True, help="prosody's XEP-0114 port")
    ap.add_argument("--secret", required=True)
    run(scenario, ap.parse_args(), timeout=90)
