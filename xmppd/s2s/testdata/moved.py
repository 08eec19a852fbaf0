#!/usr/bin/python3
"""XEP-0283 (Moved) across two Hearths, as members' clients see it.

Run with Debian's /usr/bin/python3 (python3-slixmpp), from
xmppd/s2s/moved_e2e_test.go. --client R (a contact on the first server),
C (a contact on the second), O (the old account, on the second), N (the
new account, on the first), each JID:PASSWORD:HOST:PORT:MECH as in
federate.py.

  1. O befriends R (across) and C (same server).
  2. O publishes the moved statement naming N (PEP urn:xmpp:moved:1, item
     "current", the default access model).
  3. N asks R and C to subscribe, with <moved><old-jid>O</old-jid></moved>.
  4. Both contacts' servers check the statement (R's over federation) and
     switch them over: N gets "subscribed" and, as they were mutual, a
     "subscribe" back from each; O gets "unsubscribed" from each; R and C
     were never asked to approve anything, and their rosters list N with
     subscription "from" under O's name.
Prints OK, or FAIL and the tail of slixmpp's log, and exits 1.
"""

import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import federate  # noqa: E402
from federate import Client, Fail, parser, run  # noqa: E402

NS = "urn:xmpp:moved:1"


async def befriend(a, b):
    A, B = a.boundjid.bare, b.boundjid.bare
    a.send_presence(pto=B, ptype="subscribe")
    await b.want(b.presences, "request from " + A, lambda p: p["type"] == "subscribe" and p["from"].bare == A)
    b.send_presence(pto=A, ptype="subscribed")
    b.send_presence(pto=A, ptype="subscribe")
    await a.want(a.presences, "request from " + B, lambda p: p["type"] == "subscribe" and p["from"].bare == B)
    a.send_presence(pto=B, ptype="subscribed")
    await b.want(b.presences, "approval from " + A, lambda p: p["type"] == "subscribed" and p["from"].bare == A)


async def scenario(r, c, o, n):
    for x in (r, c, o, n):
        await x.start()
    R, C, O, N = (x.boundjid.bare for x in (r, c, o, n))
    await befriend(o, r)
    await befriend(o, c)
    r.update_roster(O, name="Juliet", groups=["Family"])

    stmt = ET.fromstring("<moved xmlns='%s'><new-jid>%s</new-jid></moved>" % (NS, N))
    await o["xep_0060"].publish(O, NS, id="current", payload=stmt, timeout=federate.TIMEOUT)

    for contact in (R, C):
        p = n.make_presence(pto=contact, ptype="subscribe")
        p.append(ET.fromstring("<moved xmlns='%s'><old-jid>%s</old-jid></moved>" % (NS, O)))
        p.send()
    # Each contact's server answers "subscribed" and, as they were
    # mutual, asks back; in any order across the two servers.
    want = {("subscribed", R), ("subscribed", C), ("subscribe", R), ("subscribe", C)}
    while want:
        p = await n.want(n.presences, "of " + ", ".join("%s from %s" % w for w in sorted(want)),
                         lambda p: (p["type"], p["from"].bare) in want)
        want.discard((p["type"], p["from"].bare))
    left = set()
    while left != {R, C}:
        p = await o.want(o.presences, "unsubscribed from " + " and ".join({R, C} - left),
                         lambda p: p["type"] == "unsubscribed" and p["from"].bare in (R, C))
        left.add(p["from"].bare)

    for x, name in ((r, "Juliet"), (c, None)):
        while not x.presences.empty():
            p = x.presences.get_nowait()
            if p["type"] == "subscribe" and p["from"].bare == N:
                raise Fail("%s was asked to approve a verified move: %s" % (x.boundjid.bare, p))
        await x.get_roster()
        item = x.client_roster[N]
        if item["subscription"] != "from" or not item["pending_out"]:
            raise Fail("%s's roster item for %s: subscription %s, pending_out %s" % (
                x.boundjid.bare, N, item["subscription"], item["pending_out"]))
        if name and item["name"] != name:
            raise Fail("%s's roster item for %s lost the name: %r" % (x.boundjid.bare, N, item["name"]))
        if x.client_roster[O]["subscription"] != "to":
            raise Fail("%s's old item: %s" % (x.boundjid.bare, x.client_roster[O]["subscription"]))


async def main(args):
    cl = [Client(s, args.ca) for s in args.client]
    for x in cl:
        x.register_plugin("xep_0060")
    await scenario(*cl)
    for x in cl:
        x.disconnect()


if __name__ == "__main__":
    run(main, parser().parse_args(), timeout=80, lines=200)
