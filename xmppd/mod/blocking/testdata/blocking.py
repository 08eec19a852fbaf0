#!/usr/bin/python3
"""XEP-0191 blocking as the slixmpp client library sees it (its xep_0191
plugin, defaults): alice on two devices, both holding the block list;
one blocks bob, the other hears of it by a push; bob's message is
refused, and so is alice's to him; after unblocking both get through.
Run by slixmpp_e2e_test.go with Debian's
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
        self.register_plugin("xep_0191")
        self.messages = asyncio.Queue()
        self.pushes = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("message_error", self.messages.put_nowait)
        self.add_event_handler("blocked", lambda iq: self.pushes.put_nowait(("block", iq)))
        self.add_event_handler("unblocked", lambda iq: self.pushes.put_nowait(("unblock", iq)))
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

    async def login(self, port):
        started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        self.add_event_handler("failed_all_auth", lambda _: started.done() or started.set_exception(Fail("auth failed")))
        self.connect(("127.0.0.1", port), use_ssl=True, force_starttls=False, disable_starttls=True)
        try:
            await asyncio.wait_for(started, TIMEOUT)
        except asyncio.TimeoutError:
            raise Fail("%s: no session" % self.boundjid)
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
    op, iq = await two.wait(two.pushes, "block push", lambda p: True)
    if op != "block" or set(str(j) for j in iq["block"]["items"]) != {bob_jid}:
        raise Fail("two: want a block push for bob, got %s %s" % (op, iq))
    r = await two["xep_0191"].get_blocked(timeout=TIMEOUT)
    if set(str(j) for j in r["blocklist"]["items"]) != {bob_jid}:
        raise Fail("block list after blocking: %s" % r)

    bob.send_message(mto=alice_jid, mbody="let me in", mtype="chat")
    m = await bob.wait(bob.messages, "the refusal", lambda m: m["type"] == "error")
    if error_of(m) != "service-unavailable":
        raise Fail("bob: want service-unavailable, got %s" % m)
    one.send_message(mto=bob_jid, mbody="hello?", mtype="chat")
    m = await one.wait(one.messages, "the refusal", lambda m: m["type"] == "error")
    if error_of(m) != "not-acceptable" or m.xml.find(".//{urn:xmpp:blocking:errors}blocked") is None:
        raise Fail("alice: want not-acceptable with <blocked/>, got %s" % m)
    await two.get_roster()
    while not two.messages.empty():
        m = two.messages.get_nowait()
        if m["from"].bare == bob_jid:
            raise Fail("two got bob's message: %s" % m)

    await two["xep_0191"].unblock(bob_jid, timeout=TIMEOUT)
    op, iq = await one.wait(one.pushes, "unblock push", lambda p: p[0] == "unblock")
    if set(str(j) for j in iq["unblock"]["items"]) != {bob_jid}:
        raise Fail("one: want an unblock push for bob, got %s" % iq)
    bob.send_message(mto=alice_jid, mbody="now?", mtype="chat")
    await one.wait(one.messages, "bob's message after unblocking", lambda m: m["body"] == "now?")

    for c in (one, two, bob):
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
