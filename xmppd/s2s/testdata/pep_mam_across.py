#!/usr/bin/python3
"""PEP notifications and the archive across two Hearths.

Run with Debian's /usr/bin/python3 (python3-slixmpp), from
xmppd/s2s/pep_across_e2e_test.go. --client A (first server), B (second),
as in federate.py.

  1. federate.py's scenario: messages both ways, mutual subscription.
  2. B's app says (entity capabilities, XEP-0115) it wants nickname
     notifications; A publishes a nickname (XEP-0172 over PEP); B gets the
     event from A's server over federation.
  3. B pages its archive (XEP-0313) with A: the message A sent across is
     there, with the stanza-id B's server gave it.
Prints OK, or FAIL and the tail of slixmpp's log, and exits 1.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import federate  # noqa: E402
from federate import Client, Fail, parser, run  # noqa: E402


def client(spec, ca):
    c = Client(spec, ca)
    for p in ("xep_0030", "xep_0115", "xep_0163", "xep_0172", "xep_0059", "xep_0313"):
        c.register_plugin(p)
    c.nicks = asyncio.Queue()
    c.add_event_handler("user_nick_publish", c.nicks.put_nowait)
    return c


async def scenario(a, b):
    await federate.scenario(a, b)
    A, B = a.boundjid.bare, b.boundjid.bare
    await a["xep_0172"].publish_nick("Alice from the first box", timeout=federate.TIMEOUT)
    end = asyncio.get_event_loop().time() + federate.TIMEOUT
    while True:
        left = end - asyncio.get_event_loop().time()
        if left <= 0:
            raise Fail("%s: no nickname event from %s" % (B, A))
        try:
            ev = await asyncio.wait_for(b.nicks.get(), left)
        except asyncio.TimeoutError:
            continue
        if ev["from"].bare == A and ev["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice from the first box":
            break
    found = False
    async for page in b["xep_0313"].retrieve(with_jid=A, iterator=True, rsm={"max": 50}):
        for m in page["mam"]["results"]:
            fwd = m["mam_result"]["forwarded"]["stanza"]
            if fwd["body"] == "hello from " + A:
                found = True
    if not found:
        raise Fail("%s: the message from %s is not in the archive" % (B, A))


async def main(args):
    a, b = (client(s, args.ca) for s in args.client)
    await scenario(a, b)
    for x in (a, b):
        x.disconnect()


if __name__ == "__main__":
    run(main, parser().parse_args(), timeout=80, lines=200)
