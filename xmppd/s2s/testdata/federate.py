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
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import Fail, run  # noqa: E402, F401 (Fail: for the scripts that import this one)

TIMEOUT = 20


class Client(slixtest.Client):
    """A client given as JID:PASSWORD:HOST:PORT:MECH, logging in with
    STARTTLS; it answers subscription requests only when told to."""

    def __init__(self, spec, ca):
        jid, pw, host, port, mech = spec.rsplit(":", 4)
        super().__init__(jid, pw, ca, mech=mech, timeout=TIMEOUT, addr=(host, int(port)))
        self.auto_authorize = None
        self.auto_subscribe = False
        self.messages = self.queue("message")
        self.presences = self.queue("presence")

    async def start(self):
        await super().start()
        await self.get_roster()
        self.send_presence()

    async def want(self, queue, what, pred):
        return await super().want(queue, what, pred, errors_fail=True)


def parser():
    """--client (once per client) and --ca, as the Go tests pass them."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", action="append", required=True)
    ap.add_argument("--ca", required=True)
    return ap


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


async def main(args):
    a, b = Client(args.client[0], args.ca), Client(args.client[1], args.ca)
    await scenario(a, b)
    for c in (a, b):
        c.disconnect()


if __name__ == "__main__":
    run(main, parser().parse_args(), timeout=50, lines=200)
