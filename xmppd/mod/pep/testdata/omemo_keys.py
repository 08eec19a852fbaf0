#!/usr/bin/python3
"""OMEMO key publication over PEP as a real client library does it:
slixmpp's XEP-0060/0163 plugins publish the device lists and bundles of
both OMEMO generations with the publish-options Conversations uses
(access model open; max_items max for urn:xmpp:omemo:2:bundles), a
contact that announces +notify in its entity capabilities gets the last
device lists when it comes online and the next one live, and fetches the
bundles. Run by slixmpp_e2e_test.go with Debian's /usr/bin/python3.
Prints "OK" and exits 0, or "FAIL: ..." with the recent XML and exits 1.
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
LOG = collections.deque(maxlen=60)
AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = AXOLOTL + ".devicelist"
OMEMO2 = "urn:xmpp:omemo:2"
DEVICES2 = OMEMO2 + ":devices"
BUNDLES2 = OMEMO2 + ":bundles"
PUBOPTS = "http://jabber.org/protocol/pubsub#publish-options"


class Keep(logging.Handler):
    def emit(self, record):
        LOG.append(self.format(record))


class Fail(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Fail(what)


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, args):
        super().__init__("%s@%s/e2e" % (user, args.domain), user + "-pw", sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        for p in ("xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163"):
            self.register_plugin(p)
        self.events = asyncio.Queue()
        self.held = []
        self.add_event_handler("pubsub_publish", lambda msg: self.events.put_nowait(msg))
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

    def options(self, **fields):
        form = self["xep_0004"].make_form("submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value=PUBOPTS)
        for k, v in fields.items():
            form.add_field(var="pubsub#" + k, value=v)
        return form

    async def pep_event(self, node):
        """The next pubsub event for node (others are kept for later)."""
        for i, msg in enumerate(self.held):
            if msg["pubsub_event"]["items"]["node"] == node:
                del self.held[i]
                return msg["pubsub_event"]["items"]["item"]
        while True:
            msg = await asyncio.wait_for(self.events.get(), TIMEOUT)
            if msg["pubsub_event"]["items"]["node"] == node:
                return msg["pubsub_event"]["items"]["item"]
            self.held.append(msg)


def devicelist(*ids):
    el = ET.Element("{%s}list" % AXOLOTL)
    for i in ids:
        ET.SubElement(el, "{%s}device" % AXOLOTL, id=str(i))
    return el


def devices2(*ids):
    el = ET.Element("{%s}devices" % OMEMO2)
    for i in ids:
        ET.SubElement(el, "{%s}device" % OMEMO2, id=str(i))
    return el


def bundle(ns, text):
    el = ET.Element("{%s}bundle" % ns)
    ET.SubElement(el, "{%s}ik" % ns if ns == OMEMO2 else "{%s}identityKey" % ns).text = text
    return el


async def scenario(args):
    alice, bob = Client("alice", args), Client("bob", args)
    await alice.login(args.port)
    await bob.login(args.port)
    a = alice.boundjid.bare
    opts = alice.options(access_model="open")
    # Conversations' publications: device list and bundle, both generations.
    await alice["xep_0060"].publish(None, DEVICELIST, id="current", payload=devicelist(1234), options=opts, timeout=TIMEOUT)
    await alice["xep_0060"].publish(None, AXOLOTL + ".bundles:1234", id="current", payload=bundle(AXOLOTL, "legacy-key"),
                                    options=alice.options(access_model="open"), timeout=TIMEOUT)
    await alice["xep_0060"].publish(None, DEVICES2, id="current", payload=devices2(1234),
                                    options=alice.options(access_model="open"), timeout=TIMEOUT)
    await alice["xep_0060"].publish(None, BUNDLES2, id="1234", payload=bundle(OMEMO2, "omemo2-key"),
                                    options=alice.options(access_model="open", max_items="max"), timeout=TIMEOUT)
    # The same options again are met; others are a precondition failure.
    try:
        await alice["xep_0060"].publish(None, DEVICELIST, id="current", payload=devicelist(1234),
                                        options=alice.options(access_model="presence"), timeout=TIMEOUT)
        raise Fail("precondition mismatch accepted")
    except IqError as e:
        check(e.iq["error"]["condition"] == "conflict", "precondition: %s" % e.iq["error"]["condition"])
        check(e.iq.xml.find(".//{http://jabber.org/protocol/pubsub#errors}precondition-not-met") is not None,
              "no precondition-not-met: %s" % e.iq)

    # bob announces +notify for both device lists and comes online: the
    # last items arrive.
    bob["xep_0163"].add_interest([DEVICELIST, DEVICES2])
    await bob["xep_0115"].update_caps(broadcast=False)
    bob.send_presence()
    item = await bob.pep_event(DEVICELIST)
    check(item["id"] == "current" and item.xml.find(".//{%s}device" % AXOLOTL).get("id") == "1234", "last item: %s" % item)
    item = await bob.pep_event(DEVICES2)
    check(item.xml.find(".//{%s}device" % OMEMO2).get("id") == "1234", "omemo:2 last item: %s" % item)

    # bob fetches the bundles as an OMEMO session is started.
    r = await bob["xep_0060"].get_items(a, AXOLOTL + ".bundles:1234", timeout=TIMEOUT)
    check("legacy-key" in str(r), "legacy bundle: %s" % r)
    r = await bob["xep_0060"].get_items(a, BUNDLES2, item_ids=["1234"], timeout=TIMEOUT)
    check("omemo2-key" in str(r), "omemo:2 bundle: %s" % r)

    # A new device: the list is published again and bob hears it live.
    await alice["xep_0060"].publish(None, DEVICELIST, id="current", payload=devicelist(1234, 5678),
                                    options=alice.options(access_model="open"), timeout=TIMEOUT)
    item = await bob.pep_event(DEVICELIST)
    ids = sorted(d.get("id") for d in item.xml.iter("{%s}device" % AXOLOTL))
    check(ids == ["1234", "5678"], "live device list: %s" % ids)
    await alice["xep_0060"].publish(None, BUNDLES2, id="5678", payload=bundle(OMEMO2, "second-key"),
                                    options=alice.options(access_model="open", max_items="max"), timeout=TIMEOUT)
    r = await bob["xep_0060"].get_items(a, BUNDLES2, timeout=TIMEOUT)
    check("omemo2-key" in str(r) and "second-key" in str(r), "max_items max keeps both bundles: %s" % r)
    alice.disconnect()
    bob.disconnect()
    await asyncio.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", required=True)
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
