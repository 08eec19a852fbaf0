#!/usr/bin/python3
"""The message archive through slixmpp's own plugins (XEP-0313 with
XEP-0059 paging, XEP-0198, XEP-0359), one phase per run, so that the Go
test (mam_e2e_test.go) can restart xmppd between phases:

  send    bob sends N numbered messages to alice, who is offline
  page    alice pages through her archive (50 a page) forwards and
          backwards: every message, in the order sent, ids unique
  window  alice's phone syncs from the archive, goes online, gets live
          messages, loses its connection without a word and stays away
          past the resume window while bob writes on; it comes back as a
          new session, asks the archive for what came after the last
          stanza-id it saw, then goes available: every message once, no
          duplicates between live, archive and offline storage.

Prints "OK" or "FAIL: ...".
"""

import asyncio
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, check, parser, run  # noqa: E402


class Client(slixtest.Client):
    def __init__(self, user, resource, args, sm=False):
        super().__init__("%s@%s/%s" % (user, args.domain, resource), user + "-pw", args.ca,
                         plugins=["xep_0030", "xep_0059", "xep_0297", "xep_0313", "xep_0359"] + (["xep_0198"] if sm else []))
        self.live = asyncio.Queue()
        self.add_event_handler("message", self._message)

    def _message(self, msg):
        # Archive results come as messages too; only chat messages count.
        if msg["body"] and msg.xml.find("{urn:xmpp:mam:2}result") is None:
            self.live.put_nowait(msg)

    async def archive(self, reverse=False, after=None):
        """Every archived message as (stanza-id, body), paged 50 at a time
        by slixmpp's XEP-0059 iterator."""
        rsm = {"max": 50}
        if after:
            rsm["after"] = after
        out = []
        async for m in self["xep_0313"].iterate(rsm=rsm, reverse=reverse):
            inner = m["mam_result"]["forwarded"]["stanza"]
            out.append((m["mam_result"]["id"], inner["body"]))
        return out

    def stanza_id(self, msg):
        for sid in msg.xml.findall("{urn:xmpp:sid:0}stanza-id"):
            if sid.get("by") == self.boundjid.bare:
                return sid.get("id")
        return None

    async def drain(self, quiet=2.0):
        got = []
        while True:
            try:
                got.append(await asyncio.wait_for(self.live.get(), quiet))
            except asyncio.TimeoutError:
                return got


async def send(args, bodies):
    bob = Client("bob", "b", args)
    await bob.start(args.port)
    for b in bodies:
        bob.send_message(mto="alice@%s" % args.domain, mbody=b, mtype="chat")
    # An iq is answered only after everything sent before it is stored.
    await bob["xep_0030"].get_info(jid=args.domain, timeout=TIMEOUT)
    bob.disconnect()


async def phase_send(args):
    await send(args, ["p%d" % i for i in range(1, args.n + 1)])


async def phase_page(args):
    alice = Client("alice", "pager", args)
    await alice.start(args.port)
    want = ["p%d" % i for i in range(1, args.n + 1)]
    fwd = await alice.archive()
    check([b for _, b in fwd] == want, "forward paging: %s" % [b for _, b in fwd][:10])
    ids = [i for i, _ in fwd]
    check(len(set(ids)) == len(ids), "archive ids repeat")
    back = await alice.archive(reverse=True)
    check([b for _, b in back] == list(reversed(want)), "backward paging: %s" % [b for _, b in back][:10])
    alice.disconnect()


async def phase_window(args):
    phone = Client("alice", "phone", args, sm=True)
    await phone.start(args.port)
    old = await phone.archive()
    check(len(old) >= args.n, "catch-up: %d archived" % len(old))
    last = old[-1][0]
    phone.send_presence()
    await send(args, ["w%d" % i for i in range(1, 11)])
    live = []
    while len(live) < 10:
        live.append(await asyncio.wait_for(phone.live.get(), TIMEOUT))
    check([m["body"] for m in live] == ["w%d" % i for i in range(1, 11)], "live: %s" % [m["body"] for m in live])
    for m in live:
        check(phone.stanza_id(m), "delivered without a stanza-id: %s" % m)
    last = phone.stanza_id(live[-1])
    phone.abort()  # the link dies: no ack, no goodbye
    await send(args, ["w%d" % i for i in range(11, 21)])
    await asyncio.sleep(args.window + 1.5)  # past the resume window

    back = Client("alice", "phone2", args, sm=True)
    await back.start(args.port)
    missed = await back.archive(after=last)
    back.send_presence()
    offline = await back.drain()
    seen = [m["body"] for m in live] + [b for _, b in missed] + [m["body"] for m in offline]
    dups = [b for b, c in collections.Counter(seen).items() if c > 1]
    check(not dups, "duplicates: %s (archive gave %s, offline storage %s)"
          % (dups, [b for _, b in missed], [m["body"] for m in offline]))
    check(sorted(seen, key=lambda b: int(b[1:])) == ["w%d" % i for i in range(1, 21)],
          "not every message once: %s" % seen)
    check([b for _, b in missed] == ["w%d" % i for i in range(11, 21)], "from the archive: %s" % [b for _, b in missed])
    back.disconnect()


PHASES = {"send": phase_send, "page": phase_page, "window": phase_window}


async def scenario(args):
    await PHASES[args.phase](args)


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--window", type=float, default=2)
    ap.add_argument("phase")
    run(scenario, ap.parse_args(), timeout=90)
