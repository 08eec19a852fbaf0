#!/usr/bin/python3
"""Two members send a file through the box's XEP-0065 proxy with
slixmpp's own xep_0065 plugin (Debian's python3-slixmpp): alice finds the
proxy through disco, offers it to bob, bob connects, alice activates and
writes; bob must receive every byte. Run by slixmpp_e2e_test.go with
/usr/bin/python3. Prints "OK" or "FAIL: ..." with the recent XML.
"""

import argparse
import asyncio
import collections
import hashlib
import logging
import os
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
        super().__init__("%s@%s/files" % (user, args.domain), password, sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0065")
        # slixmpp only knows tls-unique, which TLS 1.3 lacks: log in
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
        await asyncio.wait_for(started, TIMEOUT)


async def scenario(args):
    alice = Client(args, "alice", args.alice)
    bob = Client(args, "bob", args.bob)
    bob["xep_0065"].auto_accept = True
    await alice.login(args.port)
    await bob.login(args.port)

    data = os.urandom(args.size)
    got = bytearray()
    done = asyncio.get_event_loop().create_future()

    def recv(chunk):
        got.extend(chunk)
        if len(got) >= len(data) and not done.done():
            done.set_result(True)
    bob.add_event_handler("socks5_data", recv)

    proxies = await alice["xep_0065"].discover_proxies(timeout=TIMEOUT)
    want = "proxy." + args.domain
    if [str(j) for j in proxies] != [want]:
        raise Fail("proxies %s, want %s" % (proxies, want))
    sock = await alice["xep_0065"].handshake(bob.boundjid.full, timeout=TIMEOUT)
    if sock is None:
        raise Fail("handshake gave no stream")
    await sock.write(data)
    await asyncio.wait_for(done, 60)
    if hashlib.sha256(bytes(got)).digest() != hashlib.sha256(data).digest():
        raise Fail("bob got %d bytes, not the %d alice sent" % (len(got), len(data)))
    print("TRANSFERRED %d" % len(data))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    ap.add_argument("--size", type=int, default=300000)
    args = ap.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(args), 90))
    except Exception as e:
        print("FAIL: %s: %s" % (type(e).__name__, e))
        print("\n".join(LOG))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
