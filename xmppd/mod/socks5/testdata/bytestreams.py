#!/usr/bin/python3
"""Two members send a file through the box's XEP-0065 proxy with
slixmpp's own xep_0065 plugin (Debian's python3-slixmpp): alice finds the
proxy through disco, offers it to bob, bob connects, alice activates and
writes; bob must receive every byte. Run by slixmpp_e2e_test.go with
/usr/bin/python3. Prints "OK" or "FAIL: ..." with the recent XML.
"""

import asyncio
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, parser, run  # noqa: E402


class Client(slixtest.Client):
    def __init__(self, args, user, password):
        super().__init__("%s@%s/files" % (user, args.domain), password, args.ca, plugins=["xep_0030", "xep_0065"])


async def scenario(args):
    alice = Client(args, "alice", args.alice)
    bob = Client(args, "bob", args.bob)
    bob["xep_0065"].auto_accept = True
    await alice.start(args.port)
    await bob.start(args.port)

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


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    ap.add_argument("--size", type=int, default=300000)
    run(scenario, ap.parse_args(), timeout=90)
