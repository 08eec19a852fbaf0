#!/usr/bin/python3
"""XEP-0280 carbons as the slixmpp client library sees them: alice on a
phone and a laptop, both with carbons on (slixmpp's xep_0280 plugin,
defaults), talk with bob from either device; each device must show both
sides of the conversation. Run by slixmpp_e2e_test.go with Debian's
/usr/bin/python3 (python3-slixmpp). Prints "OK" and exits 0, or prints
"FAIL: ..." with the recent XML and exits 1.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, parser, run  # noqa: E402


class Client(slixtest.Client):
    def __init__(self, args, user, resource, password):
        super().__init__("%s@%s/%s" % (user, args.domain, resource), password, args.ca,
                         plugins=["xep_0030", "xep_0297", "xep_0280"])
        self.messages = self.queue("message")
        self.carbons = self.queue()
        self.add_event_handler("carbon_received", lambda m: self.carbons.put_nowait(("received", m)))
        self.add_event_handler("carbon_sent", lambda m: self.carbons.put_nowait(("sent", m)))

    async def login(self, port, carbons):
        await self.start(port)
        if carbons:
            await self["xep_0280"].enable(timeout=TIMEOUT)
        self.send_presence()
        await self.get_roster()


def forwarded(carbon):
    direction, m = carbon
    return direction, m["carbon_%s" % direction]


async def scenario(args):
    alice_jid = "alice@" + args.domain
    bob_jid = "bob@" + args.domain
    phone = Client(args, "alice", "phone", args.alice)
    laptop = Client(args, "alice", "laptop", args.alice)
    bob = Client(args, "bob", "desk", args.bob)
    await phone.login(args.port, True)
    await laptop.login(args.port, True)
    await bob.login(args.port, False)

    # Bob writes to the phone: the laptop gets a received carbon.
    bob.send_message(mto=alice_jid + "/phone", mbody="to your phone", mtype="chat")
    await phone.want(phone.messages, "bob's message", lambda m: m["body"] == "to your phone")
    d, m = forwarded(await laptop.want(laptop.carbons, "received carbon", lambda c: True))
    if d != "received" or m["body"] != "to your phone" or m["from"].bare != bob_jid:
        raise Fail("laptop: want a received carbon of bob's message, got %s %s" % (d, m))

    # The laptop answers: bob gets it, the phone gets a sent carbon.
    laptop.send_message(mto=bob_jid, mbody="answered from the laptop", mtype="chat")
    await bob.want(bob.messages, "alice's answer", lambda m: m["body"] == "answered from the laptop")
    d, m = forwarded(await phone.want(phone.carbons, "sent carbon", lambda c: True))
    if d != "sent" or m["body"] != "answered from the laptop" or str(m["to"]) != bob_jid or str(m["from"]) != alice_jid + "/laptop":
        raise Fail("phone: want a sent carbon of the laptop's answer, got %s %s" % (d, m))

    # The phone answers: the laptop gets a sent carbon.
    phone.send_message(mto=bob_jid, mbody="and from the phone", mtype="chat")
    await bob.want(bob.messages, "alice's second answer", lambda m: m["body"] == "and from the phone")
    d, m = forwarded(await laptop.want(laptop.carbons, "sent carbon", lambda c: True))
    if d != "sent" or m["body"] != "and from the phone":
        raise Fail("laptop: want a sent carbon of the phone's answer, got %s %s" % (d, m))

    # A private message is not copied.
    msg = phone.make_message(mto=bob_jid, mbody="private", mtype="chat")
    msg.enable("carbon_private")
    msg.send()
    got = await bob.want(bob.messages, "the private message", lambda m: m["body"] == "private")
    if got.xml.find("{urn:xmpp:carbons:2}private") is not None:
        raise Fail("bob got <private/>: %s" % got)
    await laptop.get_roster()  # answered after anything the message caused
    if not laptop.carbons.empty():
        raise Fail("laptop got a carbon of a private message: %s" % (laptop.carbons.get_nowait(),))

    for c in (phone, laptop, bob):
        c.disconnect()


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    run(scenario, ap.parse_args())
