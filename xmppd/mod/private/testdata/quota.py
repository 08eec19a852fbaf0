#!/usr/bin/python3
"""Private storage's per-account key limit as a real client library sees
it: slixmpp's XEP-0049 plugin stores namespaces until the server refuses
one with resource-constraint (type wait), then clears one (its empty
element) and stores the refused one. Run by slixmpp_e2e_test.go with
Debian's /usr/bin/python3 (python3-slixmpp). Prints "OK" and exits 0, or
"FAIL: ..." with the recent XML and exits 1.
"""

import argparse
import asyncio
import collections
import logging
import sys

import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

TIMEOUT = 10
LOG = collections.deque(maxlen=40)


class Keep(logging.Handler):
    def emit(self, record):
        LOG.append(self.format(record))


class Fail(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Fail(what)


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__("alice@%s/e2e" % args.domain, args.password, sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        self.register_plugin("xep_0049")
        # slixmpp 1.8 only knows tls-unique, which TLS 1.3 lacks.
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
        try:
            await asyncio.wait_for(started, TIMEOUT)
        except asyncio.TimeoutError:
            raise Fail("no session")

    def store(self, namespaces, text="some settings"):
        iq = self.make_iq_set()
        for ns in namespaces:
            el = ET.Element("{%s}x" % ns)
            el.text = text
            iq["private"].xml.append(el)
        return iq.send(timeout=TIMEOUT)


async def scenario(args):
    c = Client(args)
    await c.login(args.port)
    names = ["urn:example:app%d" % i for i in range(args.keys)]
    for i in range(0, args.keys, args.per_set):
        await c.store(names[i:i + args.per_set])
    try:
        await c.store(["urn:example:one-too-many"])
        raise Fail("namespace %d stored past the limit" % (args.keys + 1))
    except IqError as e:
        cond, typ = e.iq["error"]["condition"], e.iq["error"]["type"]
        check((cond, typ) == ("resource-constraint", "wait"), "over the limit: %s (%s)" % (cond, typ))
    # Clearing one namespace makes room.
    iq = c.make_iq_set()
    iq["private"].xml.append(ET.Element("{%s}x" % names[0]))
    await iq.send(timeout=TIMEOUT)
    await c.store(["urn:example:one-too-many"])
    iq = c.make_iq_get()
    iq["private"].xml.append(ET.Element("{urn:example:one-too-many}x"))
    r = await iq.send(timeout=TIMEOUT)
    got = r["private"].xml.find("{urn:example:one-too-many}x")
    check(got is not None and got.text == "some settings", "stored element lost: %s" % r)
    c.disconnect()
    await asyncio.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--per-set", type=int, required=True)
    args = ap.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(args), 60))
    except Exception as e:
        print("FAIL: %s: %s" % (type(e).__name__, e))
        print("\n".join(LOG))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
