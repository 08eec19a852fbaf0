#!/usr/bin/python3
"""XEP-0191 blocking as the slixmpp client library sees it (its xep_0191
plugin, defaults): alice on two devices, both holding the block list;
one blocks bob, the other hears of it by a push; bob's message is
refused, and so is alice's to him; after unblocking both get through.
Run by slixmpp_e2e_test.go with Debian's
/usr/bin/python3 (python3-slixmpp). Prints "OK" and exits 0, or prints
"FAIL: ..." with the recent XML and exits 1.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, parser, run  # noqa: E402


class Client(slixtest.Client):
    def __init__(self, args, user, resource, password):
        super().__init__("%s@%s/%s" % (user, args.domain, resource), password, args.ca, plugins=["xep_0030", "xep_0191"])
        self.messages = self.queue("message", "message_error")
        self.pushes = asyncio.Queue()
        self.add_event_handler("blocked", lambda iq: self.pushes.put_nowait(("block", iq)))
        self.add_event_handler("unblocked", lambda iq: self.pushes.put_nowait(("unblock", iq)))

    async def login(self, port):
        await self.start(port)
        self.send_presence()
        await self.get_roster()


def error_of(m):
    return m["error"]["condition"] if m["type"] == "error" else None


async def scenario(args):
    alice_jid = "alice@" + args.domain
    bob_jid = "bob@" + args.domain
    one = Client(args, "alice", "one", args.alice)
    two = Client(args, "alice", "two", args.alice)
    bob = Client(args, "bob", "desk", args.bob)
    for c in (one, two, bob):
        await c.login(args.port)
    for c in (one, two):
        r = await c["xep_0191"].get_blocked(timeout=TIMEOUT)
        if r["blocklist"]["items"]:
            raise Fail("new block list not empty: %s" % r)

    await one["xep_0191"].block(bob_jid, timeout=TIMEOUT)
    op, iq = await two.want(two.pushes, "block push", lambda p: True)
    if op != "block" or set(str(j) for j in iq["block"]["items"]) != {bob_jid}:
        raise Fail("two: want a block push for bob, got %s %s" % (op, iq))
    r = await two["xep_0191"].get_blocked(timeout=TIMEOUT)
    if set(str(j) for j in r["blocklist"]["items"]) != {bob_jid}:
        raise Fail("block list after blocking: %s" % r)

    bob.send_message(mto=alice_jid, mbody="let me in", mtype="chat")
    m = await bob.want(bob.messages, "the refusal", lambda m: m["type"] == "error")
    if error_of(m) != "service-unavailable":
        raise Fail("bob: want service-unavailable, got %s" % m)
    one.send_message(mto=bob_jid, mbody="hello?", mtype="chat")
    m = await one.want(one.messages, "the refusal", lambda m: m["type"] == "error")
    if error_of(m) != "not-acceptable" or m.xml.find(".//{urn:xmpp:blocking:errors}blocked") is None:
        raise Fail("alice: want not-acceptable with <blocked/>, got %s" % m)
    await two.get_roster()
    while not two.messages.empty():
        m = two.messages.get_nowait()
        if m["from"].bare == bob_jid:
            raise Fail("two got bob's message: %s" % m)

    await two["xep_0191"].unblock(bob_jid, timeout=TIMEOUT)
    op, iq = await one.want(one.pushes, "unblock push", lambda p: p[0] == "unblock")
    if set(str(j) for j in iq["unblock"]["items"]) != {bob_jid}:
        raise Fail("one: want an unblock push for bob, got %s" % iq)
    bob.send_message(mto=alice_jid, mbody="now?", mtype="chat")
    await one.want(one.messages, "bob's message after unblocking", lambda m: m["body"] == "now?")

    for c in (one, two, bob):
        c.disconnect()


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    run(scenario, ap.parse_args())
