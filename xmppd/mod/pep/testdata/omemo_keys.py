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

import asyncio
import os
import sys

from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, check, parser, run  # noqa: E402

AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = AXOLOTL + ".devicelist"
OMEMO2 = "urn:xmpp:omemo:2"
DEVICES2 = OMEMO2 + ":devices"
BUNDLES2 = OMEMO2 + ":bundles"
PUBOPTS = "http://jabber.org/protocol/pubsub#publish-options"


class Client(slixtest.Client):
    def __init__(self, user, args):
        super().__init__("%s@%s/e2e" % (user, args.domain), user + "-pw", args.ca,
                         plugins=["xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163"])
        self.events = self.queue("pubsub_publish")
        self.held = []

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
    await alice.start(args.port)
    await bob.start(args.port)
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


if __name__ == "__main__":
    run(scenario, parser().parse_args(), lines=60)
