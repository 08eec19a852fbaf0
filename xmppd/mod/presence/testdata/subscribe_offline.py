#!/usr/bin/python3
"""RFC 6121 subscription handshake and XEP-0160 offline delivery, as the
slixmpp client library sees them. Run by slixmpp_e2e_test.go with Debian's
/usr/bin/python3 (python3-slixmpp). Prints "OK" and exits 0, or prints
"FAIL: ..." with the recent XML and exits 1.
"""

import asyncio
import datetime
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, parser, run  # noqa: E402


class Client(slixtest.Client):
    def __init__(self, args, user, password):
        super().__init__("%s@%s/e2e" % (user, args.domain), password, args.ca, plugins=["xep_0203"])
        self.auto_authorize = None  # the scenario answers requests itself
        self.auto_subscribe = False
        self.messages = self.queue("message")
        self.presences = self.queue("presence")

    async def login(self, port):
        await self.start(port)
        await self.get_roster()

    async def roster_state(self, jid, sub, ask=False):
        end = asyncio.get_event_loop().time() + TIMEOUT
        while asyncio.get_event_loop().time() < end:
            if jid in self.client_roster:
                it = self.client_roster[jid]
                if it["subscription"] == sub and bool(it["pending_out"]) == ask:
                    return
            await asyncio.sleep(0.05)
        got = dict(self.client_roster[jid]) if jid in self.client_roster else None
        raise Fail("%s: roster item %s never became %s (ask=%s): %s" % (self.boundjid, jid, sub, ask, got))


async def scenario(args):
    alice_jid = "alice@" + args.domain
    bob_jid = "bob@" + args.domain
    alice = Client(args, "alice", args.alice)
    await alice.login(args.port)
    alice.send_presence()
    await alice.want(alice.presences, "own presence", lambda p: p["from"] == alice.boundjid and p["type"] == "available")

    # Bob is offline: his request and two messages wait for him.
    alice.send_presence(pto=bob_jid, ptype="subscribe")
    await alice.roster_state(bob_jid, "none", ask=True)
    t0 = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    alice.send_message(mto=bob_jid, mbody="first", mtype="chat")
    alice.send_message(mto=bob_jid, mbody="second", mtype="chat")
    await alice.get_roster()  # answered after both messages were stored

    bob = Client(args, "bob", args.bob)
    await bob.login(args.port)
    bob.send_presence()
    await bob.want(bob.presences, "alice's stored request",
                   lambda p: p["type"] == "subscribe" and p["from"].bare == alice_jid)
    for body in ("first", "second"):
        m = await bob.want(bob.messages, "offline message %r" % body, lambda m: m["body"] != "")
        if m["body"] != body:
            raise Fail("offline messages out of order: got %r, want %r" % (m["body"], body))
        d = m["delay"]
        stamp = d["stamp"]
        if str(d["from"]) != args.domain or stamp is None:
            raise Fail("no XEP-0203 delay from %s: %s" % (args.domain, m))
        if stamp.utcoffset() != datetime.timedelta(0) or stamp < t0 - datetime.timedelta(seconds=1) or \
                stamp > datetime.datetime.now(datetime.timezone.utc):
            raise Fail("delay stamp %s not UTC or not when it was sent (%s)" % (stamp, t0))

    # Bob accepts and asks back; alice accepts: both.
    bob.send_presence(pto=alice_jid, ptype="subscribed")
    await alice.want(alice.presences, "subscribed", lambda p: p["type"] == "subscribed" and p["from"].bare == bob_jid)
    await alice.want(alice.presences, "bob's presence", lambda p: p["type"] == "available" and p["from"] == bob.boundjid)
    await alice.roster_state(bob_jid, "to")
    bob.send_presence(pto=alice_jid, ptype="subscribe")
    await alice.want(alice.presences, "bob's request", lambda p: p["type"] == "subscribe" and p["from"].bare == bob_jid)
    alice.send_presence(pto=bob_jid, ptype="subscribed")
    await alice.roster_state(bob_jid, "both")
    await bob.roster_state(alice_jid, "both")
    await bob.want(bob.presences, "alice's presence", lambda p: p["type"] == "available" and p["from"] == alice.boundjid)

    # Alice leaves: bob sees her go.
    alice.disconnect()
    await bob.want(bob.presences, "alice unavailable", lambda p: p["type"] == "unavailable" and p["from"] == alice.boundjid)
    bob.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    run(scenario, ap.parse_args())
