#!/usr/bin/python3
"""Client scenarios for the xmppd end-to-end tests, driven by slixmpp.

Run with Debian's /usr/bin/python3 (python3-slixmpp). Each scenario logs in
real slixmpp clients and checks the server's behaviour step by step. On
failure it prints one line "FAIL <scenario>: <what was expected, what came>"
followed by the last XML slixmpp sent and received, and exits 1.

Example:
  /usr/bin/python3 scenarios.py --host 127.0.0.1 --c2s 5222 --c2s-tls 5223 \
      --domain hearth.localhost --ca DIR/tls/cert.pem \
      --user alice:PASSWORD --user bob:PASSWORD subscribe
"""

import argparse
import asyncio
import datetime
import os
import re
import sys
import time
import traceback
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/xmpptest"))
from slixtest import LOG, Fail, capture_log, check, no_channel_binding  # noqa: E402

NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"
TIMEOUT = 10  # seconds for any single expected event


# slixmpp's debug log (it shows every stanza) is kept in memory (LOG) and
# its tail printed only when a scenario fails.
def setup_logging():
    capture_log("%(asctime)s %(name)s %(message)s")


def tag(el):
    return ET.tostring(el, encoding="unicode") if el is not None else "<none>"


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that queues what it receives for the scenario."""

    def __init__(self, args, user, password, resource=None, mech=None):
        jid = "%s@%s" % (user, args.domain) + ("/" + resource if resource else "")
        cb = getattr(args, "channel_binding", False)
        if not cb and mech is None:
            mech = "SCRAM-SHA-256"  # without channel binding, never a -PLUS
        super().__init__(jid, password, sasl_mech=mech)
        self.args = args
        self.label = user + ("/" + resource if resource else "")
        # The scenarios answer subscriptions themselves.
        self.auto_authorize = None
        self.auto_subscribe = False
        if args.ca:
            self.ca_certs = args.ca
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.pushes = asyncio.Queue()
        if not cb:
            self.disable_channel_binding()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0203")
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)
        self.register_handler(Callback(
            "roster push",
            MatchXPath("{%s}iq/{%s}query" % (NS_CLIENT, NS_ROSTER)),
            self._push))

    def disable_channel_binding(self):
        """Makes slixmpp behave like a client without channel-binding
        support: GS2 flag "n" and no -PLUS mechanisms.

        slixmpp 1.8 knows only tls-unique, which TLS 1.3 does not define;
        and when a plain SCRAM mechanism is forced while the server offers
        -PLUS, it sends the "y" flag, which RFC 5802 §6 obliges a server that
        supports channel binding to reject as a possible downgrade. The
        login_default scenario covers slixmpp's own default behaviour."""
        no_channel_binding(self)

    def _push(self, iq):
        if iq["type"] == "set":
            self.pushes.put_nowait(iq)

    async def start(self, direct_tls=False, presence=True, roster=True, retry_mechs=False):
        loop = asyncio.get_event_loop()
        done = loop.create_future()

        def settle(value=None, exc=None):
            if not done.done():
                if exc:
                    done.set_exception(exc)
                else:
                    done.set_result(value)

        self.add_event_handler("session_start", lambda _: settle(True))
        failures = []

        def failed(s):
            failures.append("%s: %s" % (self["feature_mechanisms"].mech.name, s))
            if not retry_mechs:
                settle(exc=Fail("%s: SASL failure %r: %s" % (self.label, s["condition"], s)))
        self.add_event_handler("failed_auth", failed)
        self.add_event_handler("failed_all_auth", lambda _: settle(exc=Fail(
            "%s: no SASL mechanism worked; slixmpp tried:\n  %s" % (self.label, "\n  ".join(failures)))))
        self.add_event_handler("connection_failed", lambda e: settle(exc=Fail(
            "%s: connection failed: %s" % (self.label, e))))
        self.add_event_handler("ssl_invalid_chain", lambda e: settle(exc=Fail(
            "%s: TLS certificate not valid for %s against %s: %s" % (
                self.label, self.args.domain, self.args.ca, e))))
        self.add_event_handler("stream_error", lambda e: settle(exc=Fail(
            "%s: stream error during login: %s" % (self.label, e))))
        self.add_event_handler("disconnected", lambda r: settle(exc=Fail(
            "%s: disconnected during login (%s)" % (self.label, r))))
        if direct_tls:
            self.connect((self.args.host, self.args.c2s_tls), use_ssl=True,
                         force_starttls=False, disable_starttls=True)
        else:
            self.connect((self.args.host, self.args.c2s), force_starttls=True)
        try:
            await asyncio.wait_for(done, TIMEOUT)
        except asyncio.TimeoutError:
            raise Fail("%s: no session within %ss (transport %s)" % (
                self.label, TIMEOUT, "direct TLS" if direct_tls else "STARTTLS"))
        if presence:
            # Like a real client: fetch the roster (which makes this an
            # "interested resource" that gets roster pushes), then go online.
            if roster:
                await self.fetch_roster()
            self.send_presence()
        return self

    async def stop(self):
        if self.transport is None:
            return
        fut = self.disconnect(wait=2.0)
        try:
            await asyncio.wait_for(fut, 5) if fut is not None else None
        except Exception:
            pass
        await asyncio.sleep(0.05)

    async def iq(self, typ, to, payload, timeout=TIMEOUT):
        """Sends an iq with raw XML payload; returns the response (result or error)."""
        iq = self.Iq()
        iq["type"] = typ
        if to:
            iq["to"] = to
        if payload is not None:
            iq.append(ET.fromstring(payload))
        try:
            return await iq.send(timeout=timeout)
        except IqError as e:
            return e.iq
        except IqTimeout:
            raise Fail("%s: no response within %ss to %s" % (self.label, timeout, iq))

    async def next_message(self, what, pred=lambda m: True, timeout=TIMEOUT):
        return await wait_queue(self.messages, "%s: %s" % (self.label, what), pred, timeout)

    async def next_presence(self, what, pred=lambda p: True, timeout=TIMEOUT):
        return await wait_queue(self.presences, "%s: %s" % (self.label, what), pred, timeout)

    async def fetch_roster(self, ver=None):
        q = "<query xmlns='jabber:iq:roster'%s/>" % ("" if ver is None else " ver='%s'" % ver)
        r = await self.iq("get", None, q)
        check(r["type"] == "result", "%s: roster get failed: %s" % (self.label, r))
        return r.xml.find("{%s}query" % NS_ROSTER)

    async def barrier(self, what):
        """Waits until the server has handled everything this session sent
        so far: it handles a session's stanzas in order, so once a message
        to our own full JID is back, the earlier ones were routed."""
        self._barrier = getattr(self, "_barrier", 0) + 1
        body = "barrier %d" % self._barrier
        self.send_message(mto=self.boundjid, mbody=body, mtype="chat")
        await self.next_message("own barrier message after %s" % what, lambda m: m["body"] == body)

    @property
    def bare(self):
        return self.boundjid.bare


async def wait_queue(q, what, pred, timeout):
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail("%s: not received within %ss; got instead: %s" % (
                what, timeout, "; ".join(str(s) for s in seen) or "nothing"))
        try:
            st = await asyncio.wait_for(q.get(), left)
        except asyncio.TimeoutError:
            continue
        if pred(st):
            return st
        seen.append(st)


def push_subscription(iq, jid):
    """The subscription attribute of jid's item in a roster push, or None."""
    it = roster_item(iq.xml.find("{%s}query" % NS_ROSTER), jid)
    return None if it is None else it.get("subscription")


def roster_item(query, jid):
    if query is None:
        return None
    for it in query.findall("{%s}item" % NS_ROSTER):
        if it.get("jid") == jid:
            return it
    return None


def error_condition(st):
    err = st.xml.find("{%s}error" % NS_CLIENT)
    if err is None:
        return None, None
    for k in err:
        if k.tag.startswith("{%s}" % NS_STANZAS) and not k.tag.endswith("}text"):
            return err.get("type"), k.tag.split("}", 1)[1]
    return err.get("type"), "(no condition)"


def users(args, n):
    check(len(args.user) >= n, "scenario needs %d --user NAME:PASSWORD" % n)
    return [u.split(":", 1) for u in args.user[:n]]


# ---------------------------------------------------------------- scenarios

async def sc_login(args):
    """Both accounts x both transports x both SCRAM mechanisms log in; the
    mechanism is the one forced, and the session routes."""
    for a, apw in users(args, 2):
        for direct in (False, True):
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
                how = "%s over %s" % (mech, "direct TLS" if direct else "STARTTLS")
                c = Client(args, a, apw, mech=mech)
                await c.start(direct_tls=direct, presence=False)
                used = c["feature_mechanisms"].mech.name
                check(used == mech, "%s: negotiated %s, forced %s" % (a, used, mech))
                # A message to our own full JID comes back.
                body = "self-test %s" % how
                c.send_message(mto=c.boundjid, mbody=body, mtype="chat")
                await c.next_message("message to own full JID %s after login with %s" % (c.boundjid, how),
                                     lambda m: m["body"] == body)
                await c.stop()
                print("ok login %s with %s" % (a, how))


async def sc_login_default(args):
    """slixmpp as shipped: it picks the mechanism and does channel binding its
    own way (tls-unique); the server must let it in over both transports."""
    (a, apw), = users(args, 1)
    args.channel_binding = True
    for direct in (False, True):
        c = Client(args, a, apw)
        await c.start(direct_tls=direct, presence=False, retry_mechs=True)
        print("ok default login over %s with %s (failed before: %s)" % (
            "direct TLS" if direct else "STARTTLS", c["feature_mechanisms"].mech.name,
            sorted(c["feature_mechanisms"].attempted_mechs) or "none"))
        await c.stop()


async def sc_wrong_password(args):
    (a, apw), = users(args, 1)
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        c = Client(args, a, apw + "-wrong", mech=mech)
        got = asyncio.get_event_loop().create_future()
        c.add_event_handler("failed_auth", lambda s: got.done() or got.set_result(s["condition"]))
        c.add_event_handler("session_start", lambda _: got.done() or got.set_result("SESSION STARTED"))
        c.connect((args.host, args.c2s))
        try:
            cond = await asyncio.wait_for(got, TIMEOUT + 5)
        except asyncio.TimeoutError:
            raise Fail("wrong password with %s: no SASL <failure/> within %ss" % (mech, TIMEOUT + 5))
        check(cond == "not-authorized", "wrong password with %s: want SASL failure not-authorized, got %r" % (mech, cond))
        await c.stop()
        print("ok wrong password %s -> not-authorized" % mech)


async def subscribe_both(alice, bob):
    """The RFC 6121 §3 handshake in both directions, checking each step."""
    alice.send_presence(pto=bob.bare, ptype="subscribe")
    p = await bob.next_presence("subscribe from %s" % alice.bare,
                                lambda p: p["type"] == "subscribe")
    check(p["from"].bare == alice.bare and not p["from"].resource,
          "inbound subscribe must come from the bare JID %s, came from %s" % (alice.bare, p["from"]))
    push = await wait_queue(alice.pushes, "alice: roster push for her outbound subscribe", lambda i: True, TIMEOUT)
    it = roster_item(push.xml.find("{%s}query" % NS_ROSTER), bob.bare)
    check(it is not None and it.get("subscription") == "none" and it.get("ask") == "subscribe",
          "roster push after alice subscribes: want item %s subscription=none ask=subscribe, got %s" % (bob.bare, tag(push.xml)))

    bob.send_presence(pto=alice.bare, ptype="subscribed")
    p = await alice.next_presence("subscribed from bob", lambda p: p["type"] == "subscribed")
    check(p["from"].bare == bob.bare, "subscribed from %s, want %s" % (p["from"], bob.bare))
    push = await wait_queue(alice.pushes, "alice: roster push subscription=to",
                            lambda i: push_subscription(i, bob.bare) == "to", TIMEOUT)
    # RFC 6121 §3.1.6: after subscribed, the contact's available presence follows.
    await alice.next_presence("bob's available presence after approval",
                              lambda p: p["type"] == "available" and p["from"].bare == bob.bare)
    push = await wait_queue(bob.pushes, "bob: roster push subscription=from",
                            lambda i: push_subscription(i, alice.bare) == "from", TIMEOUT)

    bob.send_presence(pto=alice.bare, ptype="subscribe")
    p = await alice.next_presence("subscribe from bob", lambda p: p["type"] == "subscribe")
    check(p["from"].bare == bob.bare, "subscribe from %s, want %s" % (p["from"], bob.bare))
    alice.send_presence(pto=bob.bare, ptype="subscribed")
    await bob.next_presence("subscribed from alice", lambda p: p["type"] == "subscribed")
    await bob.next_presence("alice's available presence after approval",
                            lambda p: p["type"] == "available" and p["from"].bare == alice.bare)
    for c, other in ((alice, bob), (bob, alice)):
        await wait_queue(c.pushes, "%s: roster push subscription=both" % c.label,
                         lambda i: push_subscription(i, other.bare) == "both", TIMEOUT)
        q = await c.fetch_roster()
        it = roster_item(q, other.bare)
        check(it is not None and it.get("subscription") == "both" and it.get("ask") is None,
              "%s's roster: want item %s subscription=both without ask, got %s" % (c.label, other.bare, tag(q)))


async def sc_subscribe(args):
    """Subscription handshake, presence and messages between two accounts."""
    (a, apw), (b, bpw) = users(args, 2)
    alice = await Client(args, a, apw, resource="laptop").start()
    bob = await Client(args, b, bpw, resource="phone").start(direct_tls=True)
    await subscribe_both(alice, bob)
    print("ok subscription both ways, rosters say both")

    alice.send_presence(pshow="away", pstatus="lunch")
    p = await bob.next_presence("alice's away presence",
                                lambda p: p["from"] == alice.boundjid and p["show"] == "away")
    check(p["status"] == "lunch", "presence status: want 'lunch', got %r in %s" % (p["status"], p))
    print("ok presence broadcast to contact")

    for src, dst, body in ((alice, bob, "hello bob ✓"), (bob, alice, "hi alice <&>")):
        src.send_message(mto=dst.bare, mbody=body, mtype="chat")
        m = await dst.next_message("chat %r from %s" % (body, src.label), lambda m: m["body"] == body)
        check(m["from"] == src.boundjid, "message from: want the sender's full JID %s, got %s" % (src.boundjid, m["from"]))
        check(m["type"] == "chat", "message type: want chat, got %s" % m["type"])
    print("ok chat messages both ways")

    # Unavailable presence reaches the contact when a session ends.
    await bob.stop()
    await alice.next_presence("bob's unavailable presence when he disconnects",
                              lambda p: p["type"] == "unavailable" and p["from"].bare == bob.bare)
    print("ok unavailable presence on disconnect")

    bob = await Client(args, b, bpw, resource="tablet").start()
    await alice.next_presence("bob's available presence when he comes back as %s" % bob.boundjid,
                              lambda p: p["type"] == "available" and p["from"] == bob.boundjid)
    await alice.stop()
    # RFC 6121 §4.2/4.3: alice's initial presence makes the server probe her
    # contacts, so she learns that bob is online, and bob sees her arrive.
    alice = await Client(args, a, apw, resource="laptop").start()
    await alice.next_presence("bob's presence (answer to the probe) after alice logs in again",
                              lambda p: p["type"] == "available" and p["from"] == bob.boundjid)
    await bob.next_presence("alice's initial presence after she logs in again",
                            lambda p: p["type"] == "available" and p["from"] == alice.boundjid)
    print("ok presence probe on login, initial presence broadcast")
    await alice.stop()
    await bob.stop()


async def sc_offline(args):
    """Messages to an offline account arrive in order, with XEP-0203 delay stamps."""
    (a, apw), (b, bpw) = users(args, 2)
    alice = await Client(args, a, apw, resource="desk").start()
    bob = await Client(args, b, bpw, resource="phone").start()
    await bob.stop()
    await asyncio.sleep(0.3)
    sent_at = datetime.datetime.now(datetime.timezone.utc)
    bodies = ["offline %d" % i for i in range(1, 6)]
    for body in bodies:
        alice.send_message(mto=bob.bare, mbody=body, mtype="chat")
    await alice.barrier("sending the offline messages")

    bob = Client(args, b, bpw, resource="phone")
    await bob.start()
    got = []
    for body in bodies:
        m = await bob.next_message("offline message %r (received so far %r)" % (body, got),
                                   lambda m: m["body"].startswith("offline "))
        got.append(m["body"])
        check(m["body"] == body, "offline messages out of order or missing: want %r next, got %r (all so far %r)" % (body, m["body"], got))
        check(m["from"] == alice.boundjid, "offline message from: want %s, got %s" % (alice.boundjid, m["from"]))
        d = m.xml.find("{%s}delay" % NS_DELAY)
        check(d is not None, "offline message %r has no <delay xmlns='urn:xmpp:delay'/>: %s" % (body, m))
        check(d.get("from") in (args.domain, None), "delay from: want %s, got %r" % (args.domain, d.get("from")))
        stamp = d.get("stamp") or ""
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp),
              "delay stamp %r is not an XEP-0082 DateTime" % stamp)
        t = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        skew = (t - sent_at).total_seconds()
        check(-5 < skew < 30, "delay stamp %s is %.1fs away from when the message was sent (%s)" % (stamp, skew, sent_at.isoformat()))
    # Nothing more: each message exactly once.
    try:
        extra = await bob.next_message("", lambda m: m["body"].startswith("offline "), timeout=1.5)
        raise Fail("offline message delivered twice or extra: %s" % extra)
    except Fail as e:
        if "not received" not in str(e):
            raise
    print("ok 5 offline messages in order with delay stamps")
    await bob.stop()
    # Delivered means deleted: a second login gets nothing.
    bob = await Client(args, b, bpw, resource="phone").start()
    try:
        extra = await bob.next_message("", lambda m: m["body"].startswith("offline "), timeout=2)
        raise Fail("offline message delivered again on the next login: %s" % extra)
    except Fail as e:
        if "not received" not in str(e):
            raise
    print("ok offline store emptied after delivery")
    await bob.stop()
    await alice.stop()


async def sc_rosterver(args):
    """RFC 6121 §2.6 roster versioning."""
    (a, apw), = users(args, 1)
    c = await Client(args, a, apw).start(presence=False)
    check("rosterver" in c.features, "stream features lack <ver xmlns='urn:xmpp:features:rosterver'/> (features: %s)" % sorted(c.features))
    q = await c.fetch_roster(ver="")
    check(q is not None and q.get("ver") is not None,
          "roster get with ver='': want <query ver=…>, got %s" % tag(q))
    # Start from a non-empty roster (prosody reports the same version for an
    # empty roster and its first change, which would hide nothing here).
    dave = "dave@" + args.domain
    r = await c.iq("set", None, "<query xmlns='jabber:iq:roster'><item jid='%s'/></query>" % dave)
    check(r["type"] == "result", "roster set: %s" % r)
    await wait_queue(c.pushes, "roster push for %s" % dave, lambda i: push_subscription(i, dave) == "none", TIMEOUT)
    q = await c.fetch_roster(ver="")
    check(q is not None and q.get("ver") and roster_item(q, dave) is not None,
          "roster get with ver='' after adding %s: want the roster with a ver, got %s" % (dave, tag(q)))
    v1 = q.get("ver")
    contact = "carol@" + args.domain
    r = await c.iq("set", None, "<query xmlns='jabber:iq:roster'><item jid='%s' name='Carol'><group>Family</group></item></query>" % contact)
    check(r["type"] == "result", "roster set: %s" % r)
    push = await wait_queue(c.pushes, "roster push for %s" % contact, lambda i: roster_item(i.xml.find("{%s}query" % NS_ROSTER), contact) is not None, TIMEOUT)
    v2 = push.xml.find("{%s}query" % NS_ROSTER).get("ver")
    check(v2 is not None and v2 != v1, "roster push must carry a new ver (old %r), got %s" % (v1, tag(push.xml)))

    q = await c.fetch_roster(ver=v2)
    if q is not None:  # a full roster is allowed too, then with the same version
        check(q.get("ver") == v2 and roster_item(q, contact) is not None,
              "roster get with current ver %r: want an empty result or the full roster at %r, got %s" % (v2, v2, tag(q)))
    q = await c.fetch_roster(ver=v1)
    if q is not None and len(q):
        check(q.get("ver") == v2 and roster_item(q, contact) is not None,
              "roster get with old ver %r: want the roster at ver %r including %s, got %s" % (v1, v2, contact, tag(q)))
    else:
        # Empty result: the change must come as a push.
        await wait_queue(c.pushes, "push of %s after roster get with old ver" % contact,
                         lambda i: roster_item(i.xml.find("{%s}query" % NS_ROSTER), contact) is not None, TIMEOUT)
    item = roster_item(await c.fetch_roster(), contact)
    check(item is not None and item.get("name") == "Carol" and item.get("subscription") == "none"
          and [g.text for g in item.findall("{%s}group" % NS_ROSTER)] == ["Family"],
          "roster item after set: %s" % tag(item))
    r = await c.iq("set", None, "<query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query>" % contact)
    check(r["type"] == "result", "roster remove: %s" % r)
    push = await wait_queue(c.pushes, "roster push removing %s" % contact,
                            lambda i: push_subscription(i, contact) == "remove", TIMEOUT)
    v3 = push.xml.find("{%s}query" % NS_ROSTER).get("ver")
    check(v3 not in (None, v1, v2), "remove push must carry a new ver, got %r (earlier %r, %r)" % (v3, v1, v2))
    check(roster_item(await c.fetch_roster(), contact) is None, "item still in roster after remove")
    print("ok roster versioning: %r -> %r -> %r" % (v1, v2, v3))
    await c.stop()


async def sc_bind(args):
    """Server-generated resources are non-empty and distinct; a requested one is honoured."""
    (a, apw), = users(args, 1)
    c1 = await Client(args, a, apw).start(presence=False)
    c2 = await Client(args, a, apw).start(presence=False, direct_tls=True)
    r1, r2 = c1.boundjid.resource, c2.boundjid.resource
    check(r1 and r2, "server-generated resources must be non-empty: %r %r" % (c1.boundjid, c2.boundjid))
    check(r1 != r2, "two sessions got the same generated resource %r" % r1)
    check(c1.boundjid.bare == "%s@%s" % (a, args.domain), "bound JID %s is not %s@%s/…" % (c1.boundjid, a, args.domain))
    c3 = await Client(args, a, apw, resource="chosen").start(presence=False)
    check(c3.boundjid.resource == "chosen", "requested resource 'chosen', bound %s" % c3.boundjid)
    print("ok bind: generated %r and %r, requested 'chosen'" % (r1, r2))
    for c in (c1, c2, c3):
        await c.stop()


async def sc_disco(args):
    (a, apw), = users(args, 1)
    c = await Client(args, a, apw).start(presence=False)
    r = await c.iq("get", args.domain, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    check(r["type"] == "result", "disco#info on %s: %s" % (args.domain, r))
    q = r.xml.find("{http://jabber.org/protocol/disco#info}query")
    feats = {f.get("var") for f in q.findall("{http://jabber.org/protocol/disco#info}feature")}
    idents = [(i.get("category"), i.get("type")) for i in q.findall("{http://jabber.org/protocol/disco#info}identity")]
    check(("server", "im") in idents, "disco#info identities %s lack category=server type=im" % idents)
    want = ["http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version",
            "urn:xmpp:time", "vcard-temp", "jabber:iq:private"]
    missing = [f for f in want if f not in feats]
    check(not missing, "disco#info on the server lacks features %s (has %s)" % (missing, sorted(feats)))
    print("ok disco#info: %d features" % len(feats))
    await c.stop()


async def sc_services(args):
    """Ping, version, time, unknown namespaces: each checked on its own, all
    failures reported together."""
    (a, apw), (b, bpw) = users(args, 2)
    c = await Client(args, a, apw).start(presence=False)
    failures = []

    async def ping():
        r = await c.iq("get", args.domain, "<ping xmlns='urn:xmpp:ping'/>")
        check(r["type"] == "result", "XEP-0199 ping: want result, got %s" % r)
        return "ping"

    async def version():
        r = await c.iq("get", args.domain, "<query xmlns='jabber:iq:version'/>")
        check(r["type"] == "result", "XEP-0092 version: want result, got %s" % r)
        q = r.xml.find("{jabber:iq:version}query")
        name = q.findtext("{jabber:iq:version}name") if q is not None else None
        ver = q.findtext("{jabber:iq:version}version") if q is not None else None
        check(name and ver, "XEP-0092: want <name/> and <version/>, got %s" % r)
        return "version: %s %s" % (name, ver)

    async def time_():
        r = await c.iq("get", args.domain, "<time xmlns='urn:xmpp:time'/>")
        check(r["type"] == "result", "XEP-0202 time: want result, got %s" % r)
        t = r.xml.find("{urn:xmpp:time}time")
        tzo = t.findtext("{urn:xmpp:time}tzo") if t is not None else None
        utc = t.findtext("{urn:xmpp:time}utc") if t is not None else None
        check(tzo and re.match(r"^([+-]\d\d:\d\d|Z)$", tzo), "XEP-0202 tzo %r is not ±hh:mm or Z" % tzo)
        check(utc and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", utc),
              "XEP-0202 utc %r must be an XEP-0082 DateTime in UTC (…Z)" % utc)
        skew = abs((datetime.datetime.fromisoformat(utc.replace("Z", "+00:00")) - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
        check(skew < 60, "XEP-0202 utc %s is %.0fs off" % (utc, skew))
        return "time: %s %s" % (utc, tzo)

    async def unknown():
        for to in (args.domain, "%s@%s" % (b, args.domain)):
            for typ in ("get", "set"):
                r = await c.iq(typ, to, "<query xmlns='urn:example:hearth:unknown'/>")
                etype, cond = error_condition(r)
                check(r["type"] == "error" and cond == "service-unavailable",
                      "iq %s to %s in an unknown namespace: want error service-unavailable, got %s" % (typ, to, r))
                check(etype == "cancel", "service-unavailable error type: want cancel, got %r" % etype)
        return "unknown namespace -> service-unavailable (server and bare JID, get and set)"

    for f in (ping, version, time_, unknown):
        try:
            print("ok " + await f(), flush=True)
        except Fail as e:
            failures.append(str(e))
    await c.stop()
    check(not failures, "%d of 4 checks failed:\n  %s" % (len(failures), "\n  ".join(failures)))


async def sc_vcard(args):
    (a, apw), (b, bpw) = users(args, 2)
    alice = await Client(args, a, apw).start(presence=False)
    bob = await Client(args, b, bpw).start(presence=False)
    r = await alice.iq("get", None, "<vCard xmlns='vcard-temp'/>")
    check(r["type"] == "result" or error_condition(r)[1] == "item-not-found",
          "vcard get before any set: want an empty vCard or item-not-found, got %s" % r)
    card = "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>ally</NICKNAME><NOTE>%s</NOTE></vCard>" % ("x" * 2000)
    r = await alice.iq("set", None, card)
    check(r["type"] == "result", "vcard set: want result, got %s" % r)
    for who, c, to in (("own", alice, None), ("bob reading alice's", bob, alice.bare)):
        r = await c.iq("get", to, "<vCard xmlns='vcard-temp'/>")
        check(r["type"] == "result", "%s vcard get: %s" % (who, r))
        v = r.xml.find("{vcard-temp}vCard")
        check(v is not None and v.findtext("{vcard-temp}FN") == "Alice Liddell" and v.findtext("{vcard-temp}NICKNAME") == "ally"
              and v.findtext("{vcard-temp}NOTE") == "x" * 2000,
              "%s vcard get: want FN 'Alice Liddell', NICKNAME 'ally' and the 2000-char NOTE, got %s" % (who, tag(v)[:400]))
    r = await bob.iq("set", alice.bare, "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>")
    check(r["type"] == "error", "bob setting alice's vcard must fail, got %s" % r)
    r = await alice.iq("get", None, "<vCard xmlns='vcard-temp'/>")
    check(r.xml.find("{vcard-temp}vCard").findtext("{vcard-temp}FN") == "Alice Liddell", "alice's vcard changed by bob: %s" % r)
    print("ok vcard-temp set/get, readable by others, not writable by others")
    await alice.stop()
    await bob.stop()


async def sc_private(args):
    (a, apw), (b, bpw) = users(args, 2)
    c = await Client(args, a, apw).start(presence=False)
    payload = "<query xmlns='jabber:iq:private'><prefs xmlns='urn:hearth:test:prefs'><colour>teal</colour><n>42</n></prefs></query>"
    r = await c.iq("set", None, payload)
    check(r["type"] == "result", "XEP-0049 set: want result, got %s" % r)
    r = await c.iq("get", None, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:hearth:test:prefs'/></query>")
    check(r["type"] == "result", "XEP-0049 get: %s" % r)
    p = r.xml.find("{jabber:iq:private}query/{urn:hearth:test:prefs}prefs")
    check(p is not None and p.findtext("{urn:hearth:test:prefs}colour") == "teal" and p.findtext("{urn:hearth:test:prefs}n") == "42",
          "XEP-0049 get: want the stored prefs back, got %s" % r)
    r = await c.iq("get", None, "<query xmlns='jabber:iq:private'><other xmlns='urn:hearth:test:other'/></query>")
    check(r["type"] == "result", "XEP-0049 get of an unset namespace: want result (empty), got %s" % r)
    o = r.xml.find("{jabber:iq:private}query/{urn:hearth:test:other}other")
    check(o is not None and len(o) == 0, "XEP-0049 unset namespace: want the empty element back, got %s" % r)
    await c.stop()
    # Stored, not per-session: a new session of the same account reads it, another account does not.
    c = await Client(args, a, apw).start(presence=False)
    r = await c.iq("get", None, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:hearth:test:prefs'/></query>")
    p = r.xml.find("{jabber:iq:private}query/{urn:hearth:test:prefs}prefs")
    check(p is not None and p.findtext("{urn:hearth:test:prefs}colour") == "teal", "XEP-0049 after re-login: %s" % r)
    bob = await Client(args, b, bpw).start(presence=False)
    r = await bob.iq("get", None, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:hearth:test:prefs'/></query>")
    p = r.xml.find("{jabber:iq:private}query/{urn:hearth:test:prefs}prefs")
    check(p is None or p.findtext("{urn:hearth:test:prefs}colour") is None, "bob reads alice's private data: %s" % r)
    print("ok private XML storage")
    await c.stop()
    await bob.stop()


async def sc_fulljid(args):
    """RFC 6121 §8.5.3.2.1: a message to an unavailable full JID is handled like one to the bare JID."""
    (a, apw), (b, bpw) = users(args, 2)
    alice = await Client(args, a, apw, resource="desk").start()
    bob = await Client(args, b, bpw, resource="phone").start()
    gone = "%s/gone" % bob.bare
    alice.send_message(mto=gone, mbody="to a gone resource, online fallback", mtype="chat")
    m = await bob.next_message("message sent to %s, delivered to another available resource" % gone,
                               lambda m: m["body"] == "to a gone resource, online fallback")
    check(m["from"] == alice.boundjid, "from: %s" % m["from"])
    await bob.stop()
    await asyncio.sleep(0.3)
    alice.send_message(mto=gone, mbody="to a gone resource, offline fallback", mtype="chat")
    await alice.barrier("sending to the gone resource")
    bob = await Client(args, b, bpw, resource="tablet").start()
    await bob.next_message("message sent to %s while the account was offline, from offline storage" % gone,
                           lambda m: m["body"] == "to a gone resource, offline fallback")
    print("ok message to an unavailable full JID falls back to bare JID rules (online and offline)")
    await alice.stop()
    await bob.stop()


async def sc_recv(args):
    """Logs in, prints READY, waits for a message with --expect from --from."""
    (a, apw), = users(args, 1)
    # No roster fetch: the receiver only needs to be available.
    c = await Client(args, a, apw, resource="recv").start(direct_tls=args.direct, roster=False)
    print("READY", c.boundjid, flush=True)
    m = await c.next_message("message %r from %s" % (args.expect, args.sender),
                             lambda m: m["body"].strip() == args.expect and m["from"].bare == args.sender,
                             timeout=args.wait)
    print("RECEIVED from=%s type=%s body=%r" % (m["from"], m["type"], m["body"]), flush=True)
    await c.stop()


async def sc_peer(args):
    """Logs in, prints READY, answers every chat message with 'echo: <body>' for --wait seconds."""
    (a, apw), = users(args, 1)
    c = await Client(args, a, apw, resource="peer").start(roster=False)
    print("READY", c.boundjid, flush=True)
    end = time.monotonic() + args.wait
    while time.monotonic() < end:
        try:
            m = await asyncio.wait_for(c.messages.get(), end - time.monotonic())
        except asyncio.TimeoutError:
            break
        if m["body"]:
            c.send_message(mto=m["from"], mbody="echo: " + m["body"], mtype="chat")
            print("ECHOED", m["from"], len(m["body"]), flush=True)
    await c.stop()


async def sc_cb_fallback(args):
    await cb_fallback(args, True)


async def sc_cb_fallback_wrong(args):
    await cb_fallback(args, False)


async def cb_fallback(args, right):
    """slixmpp as shipped asks for tls-unique on each -PLUS mechanism, which
    TLS 1.3 does not define. Each refusal must be the SASL failure
    invalid-mechanism carrying RFC 5802's "e=unsupported-channel-binding-type"
    (a wrong password would be not-authorized), and slixmpp must then log in
    with plain SCRAM on the same connection. With a wrong password, the
    plain attempts are not-authorized and the stream stays up for each."""
    (a, apw), = users(args, 1)
    args.channel_binding = True
    for password, want_login in ((apw, True),) if right else ((apw + "-wrong", False),):
        for direct in (False, True):
            how = "%s, %s" % ("direct TLS" if direct else "STARTTLS",
                              "right password" if want_login else "wrong password")
            c = Client(args, a, password)
            seen = []
            c.add_event_handler("failed_auth", lambda s, c=c, seen=seen: seen.append(
                (c["feature_mechanisms"].mech.name, s["condition"], s["text"])))
            try:
                await c.start(direct_tls=direct, presence=False, retry_mechs=True)
                logged_in = True
            except Fail as e:
                if want_login:
                    raise
                logged_in = False
            plus = [f for f in seen if f[0].endswith("-PLUS")]
            rest = [f for f in seen if not f[0].endswith("-PLUS")]
            check(len(plus) >= 1, "%s: slixmpp tried no -PLUS mechanism (%r); the test proves nothing" % (how, seen))
            for mech, cond, text in plus:
                check(cond == "invalid-mechanism" and text == "e=unsupported-channel-binding-type",
                      "%s: %s with tls-unique refused as %r %r, want invalid-mechanism and "
                      "e=unsupported-channel-binding-type" % (how, mech, cond, text))
            if want_login:
                check(logged_in and not rest, "%s: failures after the -PLUS ones: %r" % (how, rest))
                print("ok %s: refused %s with e=unsupported-channel-binding-type, then logged in with %s" % (
                    how, [m for m, _, _ in plus], c["feature_mechanisms"].mech.name))
                await c.stop()
            else:
                check(len(rest) >= 2 and all(cond == "not-authorized" for _, cond, _ in rest),
                      "%s: plain SCRAM attempts after the refusals: %r, want two not-authorized" % (how, rest))
                print("ok %s: %s" % (how, seen))
                try:
                    await c.stop()
                except Exception:
                    pass


SCENARIOS = {
    "login": sc_login,
    "login_default": sc_login_default,
    "cb_fallback": sc_cb_fallback,
    "cb_fallback_wrong": sc_cb_fallback_wrong,
    "wrong_password": sc_wrong_password,
    "subscribe": sc_subscribe,
    "offline": sc_offline,
    "rosterver": sc_rosterver,
    "bind": sc_bind,
    "disco": sc_disco,
    "services": sc_services,
    "vcard": sc_vcard,
    "private": sc_private,
    "fulljid": sc_fulljid,
    "recv": sc_recv,
    "peer": sc_peer,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--c2s", type=int, required=True)
    ap.add_argument("--c2s-tls", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", help="trust this certificate file (the server's self-signed cert)")
    ap.add_argument("--user", action="append", default=[], help="NAME:PASSWORD")
    ap.add_argument("--expect", default="")
    ap.add_argument("--sender", default="")
    ap.add_argument("--direct", action="store_true")
    ap.add_argument("--wait", type=float, default=30)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    args = ap.parse_args()
    setup_logging()
    try:
        asyncio.get_event_loop().run_until_complete(
            asyncio.wait_for(SCENARIOS[args.scenario](args), args.timeout))
    except Fail as e:
        print("FAIL %s: %s" % (args.scenario, e), flush=True)
        print("--- last slixmpp log lines:\n" + "\n".join(LOG), flush=True)
        sys.exit(1)
    except asyncio.TimeoutError:
        print("FAIL %s: scenario did not finish within %ss" % (args.scenario, args.timeout), flush=True)
        print("--- last slixmpp log lines:\n" + "\n".join(LOG), flush=True)
        sys.exit(1)
    except Exception:
        print("FAIL %s: the script raised:\n%s" % (args.scenario, traceback.format_exc()), flush=True)
        print("--- last slixmpp log lines:\n" + "\n".join(LOG), flush=True)
        sys.exit(1)
    print("PASS %s" % args.scenario, flush=True)


if __name__ == "__main__":
    main()
