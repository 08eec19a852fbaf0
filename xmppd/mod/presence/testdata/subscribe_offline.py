#!/usr/bin/python3
"""RFC 6121 subscription handshake and XEP-0160 offline delivery, as the
slixmpp client library sees them. Run by slixmpp_e2e_test.go with Debian's
/usr/bin/python3 (python3-slixmpp). Prints "OK" and exits 0, or prints
"FAIL: ..." with the recent XML and exits 1.
"""

import argparse
import asyncio
import collections
import datetime
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
    def __init__(self, args, user, password):
        super().__init__("%s@%s/e2e" % (user, args.domain), password, sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        self.auto_authorize = None  # the scenario answers requests itself
        self.auto_subscribe = False
        self.register_plugin("xep_0203")
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)
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
    await alice.wait(alice.presences, "own presence", lambda p: p["from"] == alice.boundjid and p["type"] == "available")

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
    await bob.wait(bob.presences, "alice's stored request",
                   lambda p: p["type"] == "subscribe" and p["from"].bare == alice_jid)
    for body in ("first", "second"):
        m = await bob.wait(bob.messages, "offline message %r" % body, lambda m: m["body"] != "")
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
    await alice.wait(alice.presences, "subscribed", lambda p: p["type"] == "subscribed" and p["from"].bare == bob_jid)
    await alice.wait(alice.presences, "bob's presence", lambda p: p["type"] == "available" and p["from"] == bob.boundjid)
    await alice.roster_state(bob_jid, "to")
    bob.send_presence(pto=alice_jid, ptype="subscribe")
    await alice.wait(alice.presences, "bob's request", lambda p: p["type"] == "subscribe" and p["from"].bare == bob_jid)
    alice.send_presence(pto=bob_jid, ptype="subscribed")
    await alice.roster_state(bob_jid, "both")
    await bob.roster_state(alice_jid, "both")
    await bob.wait(bob.presences, "alice's presence", lambda p: p["type"] == "available" and p["from"] == alice.boundjid)

    # Alice leaves: bob sees her go.
    alice.disconnect()
    await bob.wait(bob.presences, "alice unavailable", lambda p: p["type"] == "unavailable" and p["from"] == alice.boundjid)
    bob.disconnect()
    await asyncio.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    args = ap.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(args), 60))
    except Exception as e:
        print("FAIL: %s: %s" % (type(e).__name__, e))
        print("\n".join(LOG))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
