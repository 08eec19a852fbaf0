#!/usr/bin/python3
"""Avatars, nickname and bookmarks through slixmpp's own plugins
(XEP-0084, XEP-0153/0054, XEP-0172, XEP-0048 over XEP-0049, XEP-0060
for XEP-0402): a PEP avatar shows in the vCard, a vCard avatar arrives
as a PEP event, a nickname is notified, and bookmarks stored either way
are seen the other way (urn:xmpp:bookmarks:1#compat). Run by
slixmpp_e2e_test.go; prints "OK" or "FAIL: ..." like omemo_keys.py.
"""

import asyncio
import base64
import hashlib
import os
import sys

from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.xmlstream import ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
from omemo_keys import Client  # noqa: E402
from slixtest import TIMEOUT, Fail, check, parser, run  # noqa: E402

BOOKMARKS2 = "urn:xmpp:bookmarks:1"


class PEPClient(Client):
    def __init__(self, user, args):
        super().__init__(user, args)
        for p in ("xep_0054", "xep_0084", "xep_0153", "xep_0172", "xep_0048", "xep_0049", "xep_0223"):
            self.register_plugin(p)
        self.meta = asyncio.Queue()
        self.nicks = asyncio.Queue()
        self.add_event_handler("avatar_metadata_publish", lambda m: self.meta.put_nowait(m))
        self.add_event_handler("user_nick_publish", lambda m: self.nicks.put_nowait(m))


async def scenario(args):
    alice, bob = PEPClient("alice", args), PEPClient("bob", args)
    await alice.start(args.port)
    await bob.start(args.port)
    a = alice.boundjid.bare

    # XEP-0084 publish: data, then metadata. The vCard follows (XEP-0398).
    img = b"\x89PNG first avatar"
    sha = hashlib.sha1(img).hexdigest()
    await alice["xep_0084"].publish_avatar(img, timeout=TIMEOUT)
    await alice["xep_0084"].publish_avatar_metadata([{"id": sha, "type": "image/png", "bytes": len(img)}], timeout=TIMEOUT)
    card = await bob["xep_0054"].get_vcard(a, cached=False, timeout=TIMEOUT)
    check(card["vcard_temp"]["PHOTO"]["BINVAL"] == img, "vCard photo: %s" % card)

    # bob comes online with the plugins' +notify: the last metadata arrives.
    await bob["xep_0115"].update_caps(broadcast=False)
    bob.send_presence()
    msg = await asyncio.wait_for(bob.meta.get(), TIMEOUT)
    check(msg["pubsub_event"]["items"]["item"]["id"] == sha, "last avatar: %s" % msg)

    # XEP-0153: a vCard photo becomes the PEP avatar, notified live.
    img2 = b"\xff\xd8 second avatar"
    sha2 = hashlib.sha1(img2).hexdigest()
    await alice["xep_0153"].set_avatar(avatar=img2, mtype="image/jpeg", timeout=TIMEOUT)
    while True:
        msg = await asyncio.wait_for(bob.meta.get(), TIMEOUT)
        if msg["pubsub_event"]["items"]["item"]["id"] == sha2:
            break
    got = await bob["xep_0084"].retrieve_avatar(a, sha2, timeout=TIMEOUT)
    data = got["pubsub"]["items"]["item"].xml.find("{urn:xmpp:avatar:data}data")
    check(data is not None and base64.b64decode(data.text) == img2, "avatar data: %s" % got)

    # XEP-0172 nickname.
    await alice["xep_0172"].publish_nick("Ally", timeout=TIMEOUT)
    msg = await asyncio.wait_for(bob.nicks.get(), TIMEOUT)
    check(msg["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Ally", "nick: %s" % msg)

    # Bookmarks: XEP-0048 in private storage shows in XEP-0402 …
    bm = Bookmarks()
    bm.add_conference("tea@groups.%s" % args.domain, "al", name="Tea", autojoin=True)
    await alice["xep_0048"].set_bookmarks(bm, method="xep_0049", timeout=TIMEOUT)
    r = await alice["xep_0060"].get_items(a, BOOKMARKS2, timeout=TIMEOUT)
    ids = [i["id"] for i in r["pubsub"]["items"]]
    check(ids == ["tea@groups.%s" % args.domain], "bookmarks 2 items: %s" % ids)
    # … and a XEP-0402 publish (its options) shows in XEP-0048.
    conf = ET.Element("{%s}conference" % BOOKMARKS2, name="Chess", autojoin="true")
    ET.SubElement(conf, "{%s}nick" % BOOKMARKS2).text = "al"
    await alice["xep_0060"].publish(None, BOOKMARKS2, id="chess@groups.%s" % args.domain, payload=conf,
                                    options=alice.options(persist_items="true", max_items="max",
                                                          send_last_published_item="never", access_model="whitelist"),
                                    timeout=TIMEOUT)
    r = await alice["xep_0048"].get_bookmarks(method="xep_0049", timeout=TIMEOUT)
    jids = sorted(str(c["jid"]) for c in r["private"]["bookmarks"]["conferences"])
    check(jids == ["chess@groups.%s" % args.domain, "tea@groups.%s" % args.domain], "XEP-0048 bookmarks: %s" % jids)
    # XEP-0223: private data in PEP with the plugin's profile; others
    # cannot read it.
    await alice["xep_0223"].store(bm, node="urn:example:settings", id="current", timeout=TIMEOUT)
    r = await alice["xep_0223"].retrieve("urn:example:settings", timeout=TIMEOUT)
    check(len(r["pubsub"]["items"]) == 1, "XEP-0223 items: %s" % r)
    try:
        await bob["xep_0060"].get_items(a, "urn:example:settings", timeout=TIMEOUT)
        raise Fail("bob read alice's XEP-0223 node")
    except IqError as e:
        check(e.iq["error"]["condition"] == "not-allowed", "XEP-0223 stranger: %s" % e.iq["error"]["condition"])
    alice.disconnect()
    bob.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    run(scenario, parser().parse_args())
