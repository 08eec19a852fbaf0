#!/usr/bin/python3
"""The information modules as slixmpp's XEP plugins see them: disco and
caps (0030/0115/0128/0157), ping (0199), version (0092), time (0202),
vcard-temp (0054), private storage (0049) and last activity (0012). Run by
slixmpp_e2e_test.go with Debian's /usr/bin/python3 (python3-slixmpp).
Prints "OK" and exits 0, or "FAIL: ..." with the recent XML and exits 1.
"""

import asyncio
import datetime
import os
import re
import sys

from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ElementBase, ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, check, parser, run  # noqa: E402


class Prefs(ElementBase):
    """Something a client would keep in private storage."""
    namespace = "urn:example:prefs"
    name = "prefs"
    plugin_attrib = "example_prefs"
    interfaces = {"theme"}
    sub_interfaces = interfaces


class Client(slixtest.Client):
    def __init__(self, args, user, password):
        super().__init__("%s@%s/e2e" % (user, args.domain), password, args.ca,
                         plugins=["xep_0030", "xep_0115", "xep_0128", "xep_0199", "xep_0092", "xep_0202",
                                  "xep_0054", "xep_0049", "xep_0012"])
        self["xep_0049"].register(Prefs)
        self.server_caps = asyncio.get_event_loop().create_future()
        self.add_event_handler("entity_caps", self._caps)

    def _caps(self, pres):
        # The caps stream feature arrives as a presence from the domain.
        if pres["from"] == self.boundjid.domain and not self.server_caps.done():
            self.server_caps.set_result(pres["caps"])


async def expect_error(coro, cond, what):
    try:
        await coro
    except IqError as e:
        got = e.iq["error"]["condition"]
        check(got == cond, "%s: error %s, want %s" % (what, got, cond))
        return
    raise Fail("%s: succeeded, want %s" % (what, cond))


async def scenario(args):
    domain = args.domain
    alice_jid = "alice@" + domain
    alice = Client(args, "alice", args.alice)
    await alice.start(args.port)
    bob = Client(args, "bob", args.bob)
    await bob.start(args.port)

    # XEP-0030 + XEP-0157: the server's identity, features and contacts.
    iq = await alice["xep_0030"].get_info(jid=domain, cached=False, timeout=TIMEOUT)
    info = iq["disco_info"]
    check(("server", "im", None, "Hearth") in info["identities"], "identities %s" % info["identities"])
    # In the order they came (slixmpp's own list is a set).
    feats = [f.attrib["var"] for f in info.xml.findall("{http://jabber.org/protocol/disco#info}feature")]
    for f in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time",
              "vcard-temp", "jabber:iq:private", "jabber:iq:last"):
        check(f in feats, "feature %s missing from %s" % (f, feats))
    check(feats == sorted(set(feats)), "features not sorted and unique: %s" % feats)
    forms = [s for s in info["substanzas"] if isinstance(s, alice["xep_0004"].stanza.Form)]
    check(len(forms) == 1, "want one extension form, got %d" % len(forms))
    values = {k: v if isinstance(v, list) else [v] for k, v in forms[0]["values"].items()}
    check(values.get("FORM_TYPE") == ["http://jabber.org/network/serverinfo"], "FORM_TYPE %s" % values)
    check(values.get("admin-addresses") == ["xmpp:root@" + domain], "admin-addresses %s" % values)

    # XEP-0115: the stream feature's ver is what slixmpp computes from the
    # disco#info answer for node#ver.
    caps = await asyncio.wait_for(alice.server_caps, TIMEOUT)
    check(caps["hash"] == "sha-1" and caps["node"], "caps %s" % caps)
    iq = await alice["xep_0030"].get_info(jid=domain, node="%s#%s" % (caps["node"], caps["ver"]), cached=False, timeout=TIMEOUT)
    ver = alice["xep_0115"].generate_verstring(iq["disco_info"], "sha-1")
    check(ver == caps["ver"], "caps ver %s, slixmpp computes %s" % (caps["ver"], ver))

    # Disco of an account: its owner's contact sees it.
    iq = await bob["xep_0030"].get_info(jid=alice_jid, cached=False, timeout=TIMEOUT)
    check(("account", "registered", None, None) in iq["disco_info"]["identities"], "account identity %s" % iq["disco_info"]["identities"])

    # XEP-0199.
    await alice["xep_0199"].send_ping(domain, timeout=TIMEOUT)
    await bob["xep_0199"].send_ping(alice_jid, timeout=TIMEOUT)

    # XEP-0092.
    iq = await alice["xep_0092"].get_version(domain, timeout=TIMEOUT)
    sv = iq["software_version"]
    check(sv["name"] == "Hearth" and sv["version"] == args.version, "version %s %s" % (sv["name"], sv["version"]))

    # XEP-0202: UTC with 'Z' and a ±hh:mm offset, close to now.
    iq = await alice["xep_0202"].get_entity_time(domain, timeout=TIMEOUT)
    el = iq["entity_time"].xml
    utc = el.find("{urn:xmpp:time}utc").text
    tzo = el.find("{urn:xmpp:time}tzo").text
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", utc) is not None, "utc %r" % utc)
    check(re.fullmatch(r"[+-]\d\d:\d\d|Z", tzo) is not None, "tzo %r" % tzo)
    # Parsed here: slixmpp 1.8's iq["entity_time"]["utc"] appends a second
    # 'Z' to the text and fails on any conforming answer.
    at = datetime.datetime.strptime(utc[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    skew = abs((at - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    check(skew < 5, "server time off by %s s" % skew)

    # XEP-0054: set own, read own and as another member; others cannot set.
    card = alice["xep_0054"].make_vcard()
    card["FN"] = "Alice Liddell"
    card["NICKNAME"] = "al"
    await alice["xep_0054"].publish_vcard(card, timeout=TIMEOUT)
    iq = await bob["xep_0054"].get_vcard(alice_jid, cached=False, timeout=TIMEOUT)
    check(iq["vcard_temp"]["FN"] == "Alice Liddell", "bob reads FN %r" % iq["vcard_temp"]["FN"])
    forged = bob["xep_0054"].make_vcard()
    forged["FN"] = "Mallory"
    await expect_error(bob["xep_0054"].publish_vcard(forged, jid=alice_jid, timeout=TIMEOUT), "forbidden", "bob sets alice's vCard")

    # XEP-0049.
    p = Prefs()
    p["theme"] = "dark"
    await alice["xep_0049"].store(p, timeout=TIMEOUT)
    iq = await alice["xep_0049"].retrieve("example_prefs", timeout=TIMEOUT)
    check(iq["private"]["example_prefs"]["theme"] == "dark", "private storage lost: %s" % iq)
    iq = alice.make_iq_set()
    iq["private"].xml.append(ET.Element("{jabber:iq:roster}query"))
    await expect_error(iq.send(timeout=TIMEOUT), "not-acceptable", "storing in jabber:iq:roster")
    iq = bob.make_iq_get(ito=alice_jid)
    iq["private"].enable("example_prefs")
    await expect_error(iq.send(timeout=TIMEOUT), "forbidden", "bob reads alice's private storage")

    # XEP-0012: uptime, then alice's logout as her contact bob sees it.
    iq = await bob["xep_0012"].get_last_activity(domain, timeout=TIMEOUT)
    check(0 <= iq["last_activity"]["seconds"] < 600, "uptime %s" % iq["last_activity"]["seconds"])
    alice.send_presence()
    alice.send_presence(ptype="unavailable", pstatus="gone fishing")
    alice.disconnect()
    end = asyncio.get_event_loop().time() + TIMEOUT
    while True:
        try:
            iq = await bob["xep_0012"].get_last_activity(alice_jid, timeout=TIMEOUT)
            if iq["last_activity"]["status"] == "gone fishing":
                check(0 <= iq["last_activity"]["seconds"] < 10, "seconds since logout %s" % iq["last_activity"]["seconds"])
                break
        except IqError:
            pass  # not recorded yet
        check(asyncio.get_event_loop().time() < end, "alice's logout never showed in her last activity")
        await asyncio.sleep(0.05)
    bob.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    ap.add_argument("--version", required=True)
    run(scenario, ap.parse_args())
