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


def check(ok, what):
    if not ok:
        raise Fail(what)


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, resource, args, sm=False):
        super().__init__("%s@%s/%s" % (user, args.domain, resource), user + "-pw", sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        for p in ("xep_0030", "xep_0059", "xep_0297", "xep_0313", "xep_0359"):
            self.register_plugin(p)
        if sm:
            self.register_plugin("xep_0198")
        self.live = asyncio.Queue()
        self.add_event_handler("message", self._message)
        # slixmpp 1.8 knows only tls-unique, which TLS 1.3 does not have.
        fm = self["feature_mechanisms"]
        orig = fm.sasl_callback

        def creds(required, optional):
            r = orig(required, optional)
            if "channel_binding" in r:
                r["channel_binding"] = None
            return r
        fm.sasl_callback = creds

    def _message(self, msg):
        # Archive results come as messages too; only chat messages count.
        if msg["body"] and msg.xml.find("{urn:xmpp:mam:2}result") is None:
            self.live.put_nowait(msg)

    async def login(self, port):
        started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        self.add_event_handler("failed_all_auth", lambda _: started.done() or started.set_exception(Fail("auth failed")))
        self.connect(("127.0.0.1", port), use_ssl=True, force_starttls=False, disable_starttls=True)
        try:
            await asyncio.wait_for(started, TIMEOUT)
        except asyncio.TimeoutError:
            raise Fail("no session")

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
    await bob.login(args.port)
    for b in bodies:
        bob.send_message(mto="alice@%s" % args.domain, mbody=b, mtype="chat")
    # An iq is answered only after everything sent before it is stored.
    await bob["xep_0030"].get_info(jid=args.domain, timeout=TIMEOUT)
    bob.disconnect()


async def phase_send(args):
    await send(args, ["p%d" % i for i in range(1, args.n + 1)])


async def phase_page(args):
    alice = Client("alice", "pager", args)
    await alice.login(args.port)
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
    await phone.login(args.port)
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
    await back.login(args.port)
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


async def main(args):
    phases = {"send": phase_send, "page": phase_page, "window": phase_window}
    try:
        await asyncio.wait_for(phases[args.phase](args), 90)
    except (Fail, asyncio.TimeoutError, slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout) as e:
        print("FAIL: %r" % e)
        print("\n".join(LOG))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--window", type=float, default=2)
    p.add_argument("phase")
    args = p.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG, handlers=[h])
    asyncio.run(main(args))
