#!/usr/bin/python3
"""Two slixmpp clients on two servers talk across federation.

Run with Debian's /usr/bin/python3 (python3-slixmpp), from
xmppd/s2s/prosody_e2e_test.go. Each --client is
JID:PASSWORD:HOST:PORT:MECH (STARTTLS, the certificate checked against
--ca). The first sends the second a message, the second answers, the first
asks for the second's presence, the second approves and asks back, the
first approves; each checks what arrives. Prints OK, or FAIL and the tail of
slixmpp's log, and exits 1.
"""

import argparse
import asyncio
import collections
import logging
import sys

import slixmpp

TIMEOUT = 20
LOG = collections.deque(maxlen=200)


class _Mem(logging.Handler):
    def emit(self, record):
        try:
            LOG.append(self.format(record))
        except Exception:
            pass


class Fail(Exception):
    pass


class Client(slixmpp.ClientXMPP):
    def __init__(self, spec, ca):
        jid, pw, host, port, mech = spec.rsplit(":", 4)
        super().__init__(jid, pw, sasl_mech=mech)
        self.addr = (host, int(port))
        self.ca_certs = ca
        self.auto_authorize = None
        self.auto_subscribe = False
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        # Our test servers offer -PLUS mechanisms slixmpp 1.8 cannot do
        # over TLS 1.3 (it knows only tls-unique): no channel binding.
        fm = self["feature_mechanisms"]
        orig = fm.sasl_callback

        def creds(required, optional):
            r = orig(required, optional)
            if "channel_binding" in r:
                r["channel_binding"] = None
            return r
        fm.sasl_callback = creds
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)

    async def start(self):
        done = asyncio.get_event_loop().create_future()

        def settle(exc=None):
            if not done.done():
                done.set_exception(exc) if exc else done.set_result(True)
        self.add_event_handler("session_start", lambda _: settle())
        self.add_event_handler("failed_all_auth", lambda _: settle(Fail("%s: login failed" % self.boundjid)))
        self.add_event_handler("connection_failed", lambda e: settle(Fail("%s: connection failed: %s" % (self.boundjid, e))))
        self.add_event_handler("ssl_invalid_chain", lambda e: settle(Fail("%s: certificate: %s" % (self.boundjid, e))))
        self.connect(self.addr, force_starttls=True)
        await asyncio.wait_for(done, TIMEOUT)
        await self.get_roster()
        self.send_presence()

    async def want(self, queue, what, pred):
        loop = asyncio.get_event_loop()
        end = loop.time() + TIMEOUT
        while True:
            left = end - loop.time()
            if left <= 0:
                raise Fail("%s: no %s within %ss" % (self.boundjid.bare, what, TIMEOUT))
            try:
                st = await asyncio.wait_for(queue.get(), left)
            except asyncio.TimeoutError:
                continue
            if st["type"] == "error":
                raise Fail("%s: error while waiting for %s: %s" % (self.boundjid.bare, what, st))
            if pred(st):
                return st


async def scenario(a, b):
    await a.start()
    await b.start()
    A, B = a.boundjid.bare, b.boundjid.bare
    a.send_message(mto=B, mbody="hello from " + A, mtype="chat")
    m = await b.want(b.messages, "message from " + A,
                     lambda m: m["from"].bare == A and m["body"] == "hello from " + A)
    b.send_message(mto=m["from"], mbody="hello back from " + B, mtype="chat")
    await a.want(a.messages, "answer from " + B,
                 lambda m: m["from"].bare == B and m["body"] == "hello back from " + B)
    # A presence subscription both ways.
    a.send_presence(pto=B, ptype="subscribe")
    await b.want(b.presences, "subscription request from " + A,
                 lambda p: p["type"] == "subscribe" and p["from"].bare == A)
    b.send_presence(pto=A, ptype="subscribed")
    b.send_presence(pto=A, ptype="subscribe")
    await a.want(a.presences, "approval from " + B,
                 lambda p: p["type"] == "subscribed" and p["from"].bare == B)
    await a.want(a.presences, "subscription request from " + B,
                 lambda p: p["type"] == "subscribe" and p["from"].bare == B)
    a.send_presence(pto=B, ptype="subscribed")
    await b.want(b.presences, "approval from " + A,
                 lambda p: p["type"] == "subscribed" and p["from"].bare == A)
    # Now subscribed: B sees A's availability.
    a.send_presence(pstatus="after subscription")
    await b.want(b.presences, "available presence of " + A,
                 lambda p: p["from"].bare == A and p["type"] in ("available", "") and p["status"] == "after subscription")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", action="append", required=True)
    ap.add_argument("--ca", required=True)
    args = ap.parse_args()
    h = _Mem()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    a, b = Client(args.client[0], args.ca), Client(args.client[1], args.ca)
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(scenario(a, b))
    except Exception as e:
        print("FAIL", e)
        print("\n".join(LOG))
        sys.exit(1)
    for c in (a, b):
        c.disconnect()
    print("OK")


if __name__ == "__main__":
    main()
