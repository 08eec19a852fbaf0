#!/usr/bin/python3
"""XEP-0292 vCard4 over PEP as a real client library publishes it.
Debian's slixmpp 1.8 has no xep_0292 plugin, so the card is built as
RFC 6351 XML and published with slixmpp's XEP-0060 plugin under the
node urn:xmpp:vcard4 with Gajim's options (item "current",
persist_items, access model presence). A contact that announces
urn:xmpp:vcard4+notify gets the card as an event and reads it by PEP
and as vcard-temp (slixmpp's XEP-0054 plugin); a stranger gets neither;
a vcard-temp set renames the vCard4 and is notified; a payload that is
not a vCard4 is refused. Run by vcard4_e2e_test.go; prints "OK" or
"FAIL: ..." like omemo_keys.py.
"""

import asyncio
import os
import sys

from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
from omemo_keys import Client  # noqa: E402
from slixtest import TIMEOUT, Fail, check, parser, run  # noqa: E402

NODE = "urn:xmpp:vcard4"
NS4 = "urn:ietf:params:xml:ns:vcard-4.0"
PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"


class VClient(Client):
    def __init__(self, user, args):
        super().__init__(user, args)
        self.register_plugin("xep_0054")

    async def card_event(self, fn):
        """Waits for a vCard4 event naming fn (an earlier card's event,
        e.g. the last item again on presence, is skipped)."""
        for _ in range(10):
            item = await self.pep_event(NODE)
            got = item.xml.find("{%s}vcard/{%s}fn/{%s}text" % (NS4, NS4, NS4))
            if got is not None and got.text == fn:
                return item
        raise Fail("%s: no vCard4 event with FN %r" % (self.boundjid, fn))


def vcard4(fn, nick, jid):
    v = ET.Element("{%s}vcard" % NS4)
    ET.SubElement(ET.SubElement(v, "{%s}fn" % NS4), "{%s}text" % NS4).text = fn
    ET.SubElement(ET.SubElement(v, "{%s}nickname" % NS4), "{%s}text" % NS4).text = nick
    ET.SubElement(ET.SubElement(v, "{%s}impp" % NS4), "{%s}uri" % NS4).text = "xmpp:" + jid
    ET.SubElement(ET.SubElement(ET.SubElement(v, "{%s}gender" % NS4), "{%s}sex" % NS4), "{%s}text" % NS4).text = "F"
    return v


def fn_of(iq):
    got = iq.xml.find(".//{%s}vcard/{%s}fn/{%s}text" % (NS4, NS4, NS4))
    return None if got is None else got.text


async def scenario(args):
    alice, bob, carol = VClient("alice", args), VClient("bob", args), VClient("carol", args)
    for c in (alice, bob, carol):
        await c.start(args.port)
    a = alice.boundjid.bare

    # XEP-0292 §7: the account says it does vCard4.
    info = await bob["xep_0030"].get_info(jid=a, timeout=TIMEOUT)
    check(NS4 in info["disco_info"]["features"], "no %s in alice's disco#info" % NS4)

    # bob comes online asking for vCard4 events.
    bob["xep_0163"].add_interest([NODE])
    await bob["xep_0115"].update_caps(broadcast=False)
    bob.send_presence()

    await alice["xep_0060"].publish(None, NODE, id="current", payload=vcard4("Alice", "al", a),
                                    options=alice.options(persist_items="true", access_model="presence"),
                                    timeout=TIMEOUT)
    item = await bob.card_event("Alice")
    check(item["id"] == "current", "event item id: %s" % item)

    r = await bob["xep_0060"].get_items(a, NODE, timeout=TIMEOUT)
    check(fn_of(r) == "Alice", "bob's PEP read: %s" % r)
    try:
        await carol["xep_0060"].get_items(a, NODE, timeout=TIMEOUT)
        raise Fail("carol, no contact, read a card kept to contacts")
    except IqError as e:
        check(e.iq["error"]["condition"] == "not-authorized", "stranger: %s" % e.iq["error"]["condition"])

    # vcard-temp readers see the same card, as the access model allows.
    v = await bob["xep_0054"].get_vcard(a, cached=False, timeout=TIMEOUT)
    check(v["vcard_temp"]["FN"] == "Alice", "bob's vcard-temp: %s" % v)
    check(v.xml.find(".//{vcard-temp}JABBERID").text == a, "JABBERID: %s" % v)
    v = await carol["xep_0054"].get_vcard(a, cached=False, timeout=TIMEOUT)
    check(not v["vcard_temp"]["FN"], "carol's vcard-temp shows the name: %s" % v)

    # A vcard-temp client renames alice: the vCard4 follows, notified,
    # and keeps what vcard-temp cannot say.
    vc = alice["xep_0054"].make_vcard()
    vc["FN"] = "Alice Liddell"
    vc["NICKNAME"] = "al"
    await alice["xep_0054"].publish_vcard(vc, timeout=TIMEOUT)
    await bob.card_event("Alice Liddell")
    r = await bob["xep_0060"].get_items(a, NODE, timeout=TIMEOUT)
    check(fn_of(r) == "Alice Liddell" and r.xml.find(".//{%s}gender" % NS4) is not None, "after vcard-temp: %s" % r)

    # Not a vCard4: XEP-0060 §7.1.3.5.
    try:
        await alice["xep_0060"].publish(None, NODE, id="current", payload=vc.xml, timeout=TIMEOUT)
        raise Fail("a vcard-temp payload was accepted on %s" % NODE)
    except IqError as e:
        check(e.iq["error"]["condition"] == "bad-request", "bad payload: %s" % e.iq["error"]["condition"])
        check(e.iq.xml.find(".//{%s}invalid-payload" % PUBSUB_ERRORS) is not None, "no invalid-payload: %s" % e.iq)
    r = await alice["xep_0060"].get_items(a, NODE, timeout=TIMEOUT)
    check(fn_of(r) == "Alice Liddell", "the refused publish changed the card: %s" % r)

    for c in (alice, bob, carol):
        c.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    run(scenario, parser().parse_args(), lines=60)
