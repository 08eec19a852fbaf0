#!/usr/bin/python3
"""Private storage's per-account key limit as a real client library sees
it: slixmpp's XEP-0049 plugin stores namespaces until the server refuses
one with resource-constraint (type wait), then clears one (its empty
element) and stores the refused one. Run by slixmpp_e2e_test.go with
Debian's /usr/bin/python3 (python3-slixmpp). Prints "OK" and exits 0, or
"FAIL: ..." with the recent XML and exits 1.
"""

import asyncio
import os
import sys

from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
from slixtest import TIMEOUT, Client, Fail, check, parser, run  # noqa: E402


def store(c, namespaces, text="some settings"):
    iq = c.make_iq_set()
    for ns in namespaces:
        el = ET.Element("{%s}x" % ns)
        el.text = text
        iq["private"].xml.append(el)
    return iq.send(timeout=TIMEOUT)


async def scenario(args):
    c = Client("alice@%s/e2e" % args.domain, args.password, args.ca, plugins=["xep_0049"])
    await c.start(args.port)
    names = ["urn:example:app%d" % i for i in range(args.keys)]
    for i in range(0, args.keys, args.per_set):
        await store(c, names[i:i + args.per_set])
    try:
        await store(c, ["urn:example:one-too-many"])
        raise Fail("namespace %d stored past the limit" % (args.keys + 1))
    except IqError as e:
        cond, typ = e.iq["error"]["condition"], e.iq["error"]["type"]
        check((cond, typ) == ("resource-constraint", "wait"), "over the limit: %s (%s)" % (cond, typ))
    # Clearing one namespace makes room.
    iq = c.make_iq_set()
    iq["private"].xml.append(ET.Element("{%s}x" % names[0]))
    await iq.send(timeout=TIMEOUT)
    await store(c, ["urn:example:one-too-many"])
    iq = c.make_iq_get()
    iq["private"].xml.append(ET.Element("{urn:example:one-too-many}x"))
    r = await iq.send(timeout=TIMEOUT)
    got = r["private"].xml.find("{urn:example:one-too-many}x")
    check(got is not None and got.text == "some settings", "stored element lost: %s" % r)
    c.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--password", required=True)
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--per-set", type=int, required=True)
    run(scenario, ap.parse_args(), lines=40)
