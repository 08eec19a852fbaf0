#!/usr/bin/python3
"""XEP-0357 with real client libraries on both ends. Run by
push_e2e_test.go with Debian's /usr/bin/python3 (python3-slixmpp).

The app server says it is one (disco identity pubsub/push) and answers
pubsub publishes. Until federation exists the server cannot reach a phone
vendor's app server on another domain, so with --component it is
slixmpp's ComponentXMPP on a second domain (push.DOMAIN) connected over
XEP-0114 to the server's loopback component listener — the routing a
remote app server will get, with s2s in place of the component; without
it, a slixmpp client of this server (pushsvc@DOMAIN/app). slixmpp 1.8 has
no xep_0357 plugin, so the phones build the enable iq themselves.

 1. alice's phone (slixmpp, xep_0198 with resumption) enables push and
    loses its connection: the session hibernates; bob's message to alice
    must reach the app server as a summary without the body.
 2. carol enables push and logs out; the test (over stdin/stdout) waits
    until the server has ended her session; bob's message is stored
    offline and must reach the app server too.
 3. dave enables push and logs out; bob joins the club's members-only
    default room and names dave there: dave, a member not in the room,
    must be woken too, the sender being bob's room address (issue 12).
Prints "OK" and exits 0, or "FAIL: ..." with the recent XML and exits 1.
"""

import asyncio
import os
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import Fail, parser, run  # noqa: E402

TIMEOUT = 20
NS = "urn:xmpp:push:0"
PUBSUB = "http://jabber.org/protocol/pubsub"
DATA = "jabber:x:data"


class Client(slixtest.Client):
    def __init__(self, args, user, res="e2e"):
        super().__init__("%s@%s/%s" % (user, args.domain, res), user + "-pw", args.ca, timeout=TIMEOUT)

    async def login(self, port):
        await self.start(port)
        self.send_presence()

    async def enable_push(self, app, node):
        await enable_push(self, app, node)


async def enable_push(xmpp, app, node, timeout=TIMEOUT):
    """xmpp's enable iq for app's node, with the publish-options secret
    s3cr3t (slixmpp 1.8 has no xep_0357 plugin). s2s/testdata's
    push_remote.py uses it too."""
    iq = xmpp.Iq()
    iq["type"] = "set"
    iq.append(ET.fromstring(
        "<enable xmlns='%s' jid='%s' node='%s'>"
        "<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>"
        "http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='secret'><value>s3cr3t</value></field></x></enable>" % (NS, app, node, DATA)))
    await iq.send(timeout=timeout)


class Answering:
    """What the app servers do (these and push_remote.py's): record
    publishes (their XML) and answer them."""

    def setup(self):
        self.register_plugin("xep_0030")
        self["xep_0030"].add_identity(category="pubsub", itype="push", name="e2e app server")
        self.pushes = asyncio.Queue()
        self.register_handler(Callback("push publish", MatchXPath("{%s}iq/{%s}pubsub" % (self.default_ns, PUBSUB)), self.publish))

    def publish(self, iq):
        if iq["type"] != "set":
            return
        self.pushes.put_nowait(iq.xml)
        iq.reply().send()

    async def next(self, what, timeout=TIMEOUT):
        try:
            return await asyncio.wait_for(self.pushes.get(), timeout)
        except asyncio.TimeoutError:
            raise Fail("no push for %s reached the app server" % what)


async def answer():
    """The test's answer to a question printed on stdout."""
    line = await asyncio.get_event_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


class AppServer(Answering, Client):
    def __init__(self, args):
        Client.__init__(self, args, "pushsvc", "app")
        self.setup()


class AppComponent(Answering, slixmpp.ComponentXMPP):
    """An app server as a component jid, connected over XEP-0114 to the
    server's component port on loopback."""

    def __init__(self, jid, secret, port):
        slixmpp.ComponentXMPP.__init__(self, jid, secret, "127.0.0.1", port)
        self.setup()

    async def login(self, port=None, timeout=TIMEOUT):
        started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        self.connect()
        try:
            await asyncio.wait_for(started, timeout)
        except asyncio.TimeoutError:
            raise Fail("component %s: no handshake" % self.boundjid)


def check(x, who, node, sender):
    """x, a publish's XML, comes from who to node with the secret and a
    summary from sender without the body."""
    frm = x.get("from")
    pub = x.find("{%s}pubsub/{%s}publish" % (PUBSUB, PUBSUB))
    form = x.find("{%s}pubsub/{%s}publish/{%s}item/{%s}notification/{%s}x" % (PUBSUB, PUBSUB, PUBSUB, NS, DATA))
    opts = x.find("{%s}pubsub/{%s}publish-options/{%s}x" % (PUBSUB, PUBSUB, DATA))
    fields = {f.get("var"): f.findtext("{%s}value" % DATA) for f in (form if form is not None else [])}
    secret = {f.get("var"): f.findtext("{%s}value" % DATA) for f in (opts if opts is not None else [])}.get("secret")
    got_node = pub.get("node") if pub is not None else None
    if frm != who or got_node != node or secret != "s3cr3t":
        raise Fail("push from %s to node %s, secret %s: want %s, %s, s3cr3t" % (frm, got_node, secret, who, node))
    if fields.get("FORM_TYPE") != "urn:xmpp:push:summary" or fields.get("message-count") != "1" or \
            fields.get("last-message-sender") != sender or "last-message-body" in fields:
        raise Fail("summary %s" % fields)


async def scenario(args):
    d = args.domain
    app = AppComponent("push." + d, args.secret, args.component) if args.component else AppServer(args)
    await app.login(args.port)
    appjid = str(app.boundjid)
    bob = Client(args, "bob")
    bob.register_plugin("xep_0045")
    await bob.login(args.port)

    # 1. A hibernating phone.
    alice = Client(args, "alice", "phone")
    alice.register_plugin("xep_0198")
    await alice.login(args.port)
    await alice.enable_push(appjid, "alice-phone")
    if not alice["xep_0198"].sm_id:
        raise Fail("no resumable stream management")
    alice.abort()  # the network goes: no closing tag
    await asyncio.sleep(0)
    print("HIBERNATING? alice", flush=True)
    if (await answer()) != "yes":
        raise Fail("alice's session did not hibernate")
    bob.send_message(mto="alice@" + d, mbody="the body stays home", mtype="chat")
    check(await app.next("the hibernating phone"), "alice@" + d, "alice-phone", str(bob.boundjid))

    # 2. A phone that logged out.
    carol = Client(args, "carol", "phone")
    await carol.login(args.port)
    await carol.enable_push(appjid, "carol-phone")
    carol.disconnect()
    print("GONE? carol", flush=True)
    if (await answer()) != "yes":
        raise Fail("carol's session did not end")
    bob.send_message(mto="carol@" + d, mbody="stored offline", mtype="chat")
    check(await app.next("the offline account"), "carol@" + d, "carol-phone", str(bob.boundjid))

    # 3. A member named in a members-only room they are not in (the
    #    club's default room, of which every account is a member): dave
    #    enabled push and logged out; bob joins the room and names him.
    dave = Client(args, "dave", "phone")
    await dave.login(args.port)
    await dave.enable_push(appjid, "dave-phone")
    dave.disconnect()
    print("GONE? dave", flush=True)
    if (await answer()) != "yes":
        raise Fail("dave's session did not end")
    room = "everyone@groups." + d
    await bob["xep_0045"].join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
    bob.send_message(mto=room, mbody="dave: the meeting moved to 8", mtype="groupchat")
    check(await app.next("the member named in the room"), "dave@" + d, "dave-phone", room + "/bob")

    app.disconnect()
    bob.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--component", type=int, default=0, help="XEP-0114 port: the app server is a component")
    ap.add_argument("--secret", default="")
    run(scenario, ap.parse_args(), timeout=90, lines=60)
