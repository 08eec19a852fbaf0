#!/usr/bin/python3
"""A new member's first minutes, through slixmpp: carol registers in-band
with an invite (XEP-0401 preauth, then XEP-0077) and finds the club's
default room in her Bookmarks 2 node with autojoin (and in the XEP-0048
copy); when alice's client approves carol's presence subscription, carol
gets alice's last avatar at once, without sending presence again; a node
alice limits to her roster group "Family" is carol's to read once alice
files her there, while bob, who sees alice's presence but is in no such
group, is refused with not-authorized / not-in-roster-group. Run by
slixmpp_e2e_test.go; prints "OK" or "FAIL: ..." like omemo_keys.py.
"""

import asyncio
import os
import sys

from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0077 import RegisterFeature
from slixmpp.stanza import StreamFeatures
from slixmpp.xmlstream import ET, register_stanza_plugin

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
from omemo_keys import Client  # noqa: E402
from slixtest import TIMEOUT, Fail, check, parser, run  # noqa: E402

BOOKMARKS2 = "urn:xmpp:bookmarks:1"
AVATAR_META = "urn:xmpp:avatar:metadata"
FAMILY = "urn:example:family"


class Member(Client):
    def __init__(self, user, args, token=None):
        super().__init__(user, args)
        for p in ("xep_0048", "xep_0049", "xep_0084"):
            self.register_plugin(p)
        self.token = token
        if token:
            register_stanza_plugin(StreamFeatures, RegisterFeature)
            # Before SASL (order 100): the invite's token, then the account.
            self.register_feature("register", self.register_with_invite, restart=False, order=50)

    async def register_with_invite(self, features):
        if not self.token:
            return False
        # slixmpp 1.8 holds back every iq but bind before the session
        # starts ("NOT SENT"); registration happens before it.
        self._always_send_everything = True
        iq = self.Iq()
        iq["type"] = "set"
        iq.append(ET.Element("{urn:xmpp:pars:0}preauth", token=self.token))
        await iq.send(timeout=TIMEOUT)
        iq = self.Iq()
        iq["type"] = "set"
        q = ET.Element("{jabber:iq:register}query")
        ET.SubElement(q, "{jabber:iq:register}username").text = self.boundjid.user
        ET.SubElement(q, "{jabber:iq:register}password").text = self.password
        iq.append(q)
        await iq.send(timeout=TIMEOUT)
        self._always_send_everything = False
        self.token = None
        return False


async def scenario(args):
    room = "everyone@groups.%s" % args.domain
    carol = Member("carol", args, token=args.token)
    await carol.start(args.port)
    c = carol.boundjid.bare

    # The default room is in the new member's bookmarks, autojoin on.
    r = await carol["xep_0060"].get_items(c, BOOKMARKS2, timeout=TIMEOUT)
    items = {i["id"]: i.xml.find("{%s}conference" % BOOKMARKS2) for i in r["pubsub"]["items"]}
    check(room in items, "bookmarks 2 of the new member: %s" % list(items))
    check(items[room].get("autojoin") in ("true", "1"), "autojoin: %s" % ET.tostring(items[room]))
    r = await carol["xep_0048"].get_bookmarks(method="xep_0049", timeout=TIMEOUT)
    confs = {str(x["jid"]): x for x in r["private"]["bookmarks"]["conferences"]}
    check(room in confs and confs[room]["autojoin"], "XEP-0048 copy: %s" % list(confs))

    # alice has an avatar; carol, online with +notify, asks to see her.
    alice, bob = Member("alice", args), Member("bob", args)
    await alice.start(args.port)
    await bob.start(args.port)
    a = alice.boundjid.bare
    await alice["xep_0084"].publish_avatar_metadata([{"id": "pic1", "type": "image/png", "bytes": 10}], timeout=TIMEOUT)
    alice.send_presence()
    await alice.get_roster(timeout=TIMEOUT)  # answered after the presence: alice is available
    # carol's own avatar first: it comes back to her as her own last item
    # once the server knows her +notify (caps learned), so the request
    # below cannot overtake her caps.
    await carol["xep_0084"].publish_avatar_metadata([{"id": "carolpic", "type": "image/png", "bytes": 10}], timeout=TIMEOUT)
    carol["xep_0163"].add_interest([AVATAR_META])
    await carol["xep_0115"].update_caps(broadcast=False)
    carol.send_presence()
    item = await carol.pep_event(AVATAR_META)
    check(item["id"] == "carolpic", "carol's own last avatar: %s" % item)
    # alice's slixmpp approves on its own (auto_authorize); the last
    # avatar follows the approval, carol sends no presence again.
    carol.send_presence(pto=a, ptype="subscribe")
    item = await carol.pep_event(AVATAR_META)
    check(item["id"] == "pic1", "last avatar after the approval: %s" % item)

    # Roster groups: alice files carol under Family and publishes a node
    # for Family only.
    await alice.update_roster(c, groups=["Family"], timeout=TIMEOUT)
    payload = ET.Element("{urn:example}note")
    payload.text = "family only"
    await alice["xep_0060"].publish(None, FAMILY, id="1", payload=payload,
                                    options=alice.options(access_model="roster", roster_groups_allowed="Family"),
                                    timeout=TIMEOUT)
    r = await carol["xep_0060"].get_items(a, FAMILY, timeout=TIMEOUT)
    check("family only" in str(r), "carol's read of the Family node: %s" % r)
    try:
        await bob["xep_0060"].get_items(a, FAMILY, timeout=TIMEOUT)
        raise Fail("bob, in no allowed group, read the Family node")
    except IqError as e:
        check(e.iq["error"]["condition"] == "not-authorized", "bob's refusal: %s" % e.iq["error"]["condition"])
        check(e.iq.xml.find(".//{http://jabber.org/protocol/pubsub#errors}not-in-roster-group") is not None,
              "no not-in-roster-group: %s" % e.iq)
    for x in (alice, bob, carol):
        x.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--token", required=True)
    run(scenario, ap.parse_args())
