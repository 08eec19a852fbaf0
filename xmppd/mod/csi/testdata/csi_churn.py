#!/usr/bin/python3
"""XEP-0352 with a real client library: slixmpp's xep_0352 plugin on
alice, 20 slixmpp contacts she is subscribed to, each changing its
presence 10 times. Run by csi_e2e_test.go with Debian's /usr/bin/python3
(python3-slixmpp). Prints "active N inactive M", then "OK" and exits 0, or
"FAIL: ..." with the recent XML and exits 1.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import Fail, parser, run  # noqa: E402

TIMEOUT = 20
CONTACTS = 20
TOGGLES = 10


class Client(slixtest.Client):
    def __init__(self, args, user):
        super().__init__("%s@%s/e2e" % (user, args.domain), user + "-pw", args.ca,
                         plugins=["xep_0199", "xep_0352"], timeout=TIMEOUT)
        self.stanzas = []  # every presence and message, in arrival order
        self.changed = asyncio.Event()

        def keep(st):
            self.stanzas.append(st)
            self.changed.set()
        self.add_event_handler("presence", keep)
        self.add_event_handler("message", keep)

    async def login(self, port):
        await self.start(port)
        await self.get_roster()

    async def until(self, what, pred):
        """Waits until pred() holds over self.stanzas."""
        end = asyncio.get_event_loop().time() + TIMEOUT
        while not pred():
            left = end - asyncio.get_event_loop().time()
            if left <= 0:
                raise Fail("%s: never got %s" % (self.boundjid, what))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def sync(self):
        """A ping to the server: everything sent before it was handled."""
        await self["xep_0199"].ping(jid=self.boundjid.domain, timeout=TIMEOUT)


def presences_from(stanzas, jids):
    return [p for p in stanzas if p.name == "presence" and p["type"] == "available" and str(p["from"]) in jids]


async def churn(contacts, tag):
    for i in range(TOGGLES):
        for c in contacts:
            c.send_presence(pstatus="%s %d" % (tag, i))
    # Each contact's stanzas are handled in order: after its ping, all of
    # its presence has been routed to alice's session.
    await asyncio.gather(*(c.sync() for c in contacts))


async def scenario(args):
    alice = Client(args, "alice")
    await alice.login(args.port)
    if not alice["xep_0352"].enabled:
        raise Fail("the server did not offer urn:xmpp:csi:0")
    alice.send_presence()
    contacts = [Client(args, "c%d" % i) for i in range(CONTACTS)]
    await asyncio.gather(*(c.login(args.port) for c in contacts))
    for c in contacts:
        c.send_presence(pstatus="here")
    jids = {str(c.boundjid) for c in contacts}
    # Alice subscribes to everyone; slixmpp contacts approve on their own.
    for c in contacts:
        alice.send_presence(pto=c.boundjid.bare, ptype="subscribe")
    await alice.until("every contact's presence", lambda: len({str(p["from"]) for p in presences_from(alice.stanzas, jids)}) == CONTACTS)

    # Active: every change reaches her.
    start = len(alice.stanzas)
    await churn(contacts, "active")
    await alice.until("%d presences" % (CONTACTS * TOGGLES),
                      lambda: len(presences_from(alice.stanzas[start:], jids)) >= CONTACTS * TOGGLES)
    await alice.sync()
    # The churn's own presences (a contact's initial presence may still
    # arrive a second time, from the subscription and its broadcast).
    active = len([p for p in presences_from(alice.stanzas[start:], jids) if p["status"].startswith("active ")])

    # Inactive: the same churn, then a message with a body.
    alice["xep_0352"].send_inactive()
    await alice.sync()  # nonzas and stanzas are handled in order
    start = len(alice.stanzas)
    await churn(contacts, "inactive")
    contacts[0].send_message(mto=alice.boundjid, mbody="wake up", mtype="chat")
    await alice.until("the message", lambda: any(m.name == "message" and m["body"] == "wake up" for m in alice.stanzas[start:]))
    got = alice.stanzas[start:]
    inactive = len(got)
    pres = presences_from(got, jids)
    if got[-1]["body"] != "wake up" or len(pres) != CONTACTS or len(got) != CONTACTS + 1:
        raise Fail("inactive: want %d presences then the message, got %d stanzas: %s ..." % (CONTACTS, len(got), [str(s) for s in got[:3]]))
    if {p["status"] for p in pres} != {"inactive %d" % (TOGGLES - 1)}:
        raise Fail("held presence is not the latest: %s" % sorted({p["status"] for p in pres}))

    # Active again: changes pass at once (a held one would wait).
    alice["xep_0352"].send_active()
    await alice.sync()
    start = len(alice.stanzas)
    contacts[1].send_presence(pstatus="back")
    await alice.until("presence after <active/>", lambda: any(p["status"] == "back" for p in presences_from(alice.stanzas[start:], jids)))

    print("active %d inactive %d" % (active, inactive))
    for c in contacts + [alice]:
        c.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    run(scenario, parser().parse_args(), timeout=120, lines=60)
