#!/usr/bin/python3
"""XEP-0280 carbons as the slixmpp client library sees them: alice on a
phone and a laptop, both with carbons on (slixmpp's xep_0280 plugin,
defaults), talk with bob from either device; each device must show both
sides of the conversation. Run by slixmpp_e2e_test.go with Debian's
/usr/bin/python3 (python3-slixmpp). Prints "OK" and exits 0, or prints
"FAIL: ..." with the recent XML and exits 1.
"""

import argparse
import asyncio
import collections
import logging
import sys

import slixmpp

TIMEOUT = 10

LOG = collections.deque(maxlen=80)


class Keep(logging.Handler):
    def emit(self, record):
        LOG.append(self.format(record))


class Fail(Exception):
    pass


class Client(slixmpp.ClientXMPP):
    def __init__(self, args, user, resource, password):
        super().__init__("%s@%s/%s" % (user, args.domain, resource), password, sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0297")
        self.register_plugin("xep_0280")
        self.messages = asyncio.Queue()
        self.carbons = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("carbon_received", lambda m: self.carbons.put_nowait(("received", m)))
        self.add_event_handler("carbon_sent", lambda m: self.carbons.put_nowait(("sent", m)))
        # slixmpp 1.8 only knows tls-unique, which TLS 1.3 lacks: log in
        # without channel binding, as many clients do.
        fm = self["feature_mechanisms"]
        orig = fm.sasl_callback

        def creds(required, optional):
            r = orig(required, optional)
            if "channel_binding" in r:
                r["channel_binding"] = None
            return r
        fm.sasl_callback = creds

    async def login(self, port, carbons):
        started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        self.add_event_handler("failed_all_auth", lambda _: started.done() or started.set_exception(Fail("auth failed")))
        self.connect(("127.0.0.1", port), use_ssl=True, force_starttls=False, disable_starttls=True)
        try:
            await asyncio.wait_for(started, TIMEOUT)
        except asyncio.TimeoutError:
            raise Fail("%s: no session" % self.boundjid)
        if carbons:
            await self["xep_0280"].enable(timeout=TIMEOUT)
        self.send_presence()
        await self.get_roster()

    async def wait(self, queue, what, pred):
        end = asyncio.get_event_loop().time() + TIMEOUT
        while True:
            left = end - asyncio.get_event_loop().time()
            if left <= 0:
                raise Fail("%s: never got %s" % (self.boundjid, what))
            try:
                st = await asyncio.wait_for(queue.get(), left)
            except asyncio.TimeoutError:
                raise Fail("%s: never got %s" % (self.boundjid, what))
            if pred(st):
                return st


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
    await phone.wait(phone.messages, "bob's message", lambda m: m["body"] == "to your phone")
    d, m = forwarded(await laptop.wait(laptop.carbons, "received carbon", lambda c: True))
    if d != "received" or m["body"] != "to your phone" or m["from"].bare != bob_jid:
        raise Fail("laptop: want a received carbon of bob's message, got %s %s" % (d, m))

    # The laptop answers: bob gets it, the phone gets a sent carbon.
    laptop.send_message(mto=bob_jid, mbody="answered from the laptop", mtype="chat")
    await bob.wait(bob.messages, "alice's answer", lambda m: m["body"] == "answered from the laptop")
    d, m = forwarded(await phone.wait(phone.carbons, "sent carbon", lambda c: True))
    if d != "sent" or m["body"] != "answered from the laptop" or str(m["to"]) != bob_jid or str(m["from"]) != alice_jid + "/laptop":
        raise Fail("phone: want a sent carbon of the laptop's answer, got %s %s" % (d, m))

    # The phone answers: the laptop gets a sent carbon.
    phone.send_message(mto=bob_jid, mbody="and from the phone", mtype="chat")
    await bob.wait(bob.messages, "alice's second answer", lambda m: m["body"] == "and from the phone")
    d, m = forwarded(await laptop.wait(laptop.carbons, "sent carbon", lambda c: True))
    if d != "sent" or m["body"] != "and from the phone":
        raise Fail("laptop: want a sent carbon of the phone's answer, got %s %s" % (d, m))

    # A private message is not copied.
    msg = phone.make_message(mto=bob_jid, mbody="private", mtype="chat")
    msg.enable("carbon_private")
    msg.send()
    got = await bob.wait(bob.messages, "the private message", lambda m: m["body"] == "private")
    if got.xml.find("{urn:xmpp:carbons:2}private") is not None:
        raise Fail("bob got <private/>: %s" % got)
    await laptop.get_roster()  # answered after anything the message caused
    if not laptop.carbons.empty():
        raise Fail("laptop got a carbon of a private message: %s" % (laptop.carbons.get_nowait(),))

    for c in (phone, laptop, bob):
        c.disconnect()
    print("OK")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--alice", required=True)
    p.add_argument("--bob", required=True)
    args = p.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(scenario(args), 60))
    except (Fail, asyncio.TimeoutError, Exception) as e:
        print("FAIL: %r" % e)
        print("\n".join(LOG))
        sys.exit(1)


if __name__ == "__main__":
    main()
