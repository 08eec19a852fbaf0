#!/usr/bin/python3
"""One account's data through slixmpp, for the XEP-0227 round trips
(prosody_e2e_test.go, ejabberd_e2e_test.go):

  fill   log in to the first server and give the account a roster (groups,
         a pending subscription), a vCard, private XML, and messages to
         the archive
  check  log in (to the server the account was moved to, with the same
         password) and find all of it there

Prints "OK" or "FAIL: ..." with the recent XML.
"""

import os
import sys

from slixmpp.xmlstream import ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/xmpptest"))
from slixtest import TIMEOUT, Client, check, parser, run  # noqa: E402

BODIES = ["history %d: O Romeo, Romeo" % i for i in range(1, 4)]
NS_PREFS = "urn:example:prefs"
AVATAR = b"\x89PNG not really an avatar"


async def fill(c, args):
    d = args.domain
    await c.get_roster(timeout=TIMEOUT)
    await c.update_roster("romeo@" + d, name="Romeo", groups=["Friends"], timeout=TIMEOUT)
    await c.update_roster("nurse@elsewhere.example", name="Nurse", groups=["Family", "Friends"], timeout=TIMEOUT)
    c.send_presence(pto="nurse@elsewhere.example", ptype="subscribe")
    card = c["xep_0054"].make_vcard()
    card["FN"] = "Juliet Capulet"
    card["NICKNAME"] = "jules"
    await c["xep_0054"].publish_vcard(card, timeout=TIMEOUT)
    iq = c.make_iq_set()
    iq.enable("private")
    prefs = ET.Element("{%s}prefs" % NS_PREFS)
    prefs.text = "red"
    iq["private"].xml.append(prefs)
    await iq.send(timeout=TIMEOUT)
    if not args.no_pep:
        await c["xep_0084"].publish_avatar(AVATAR, timeout=TIMEOUT)
    for b in BODIES:
        c.send_message(mto="romeo@" + d, mbody=b, mtype="chat")
    # Answered after the messages were handled (one stream, in order).
    await c.get_roster(timeout=TIMEOUT)


async def check_account(c, args):
    d = args.domain
    await c.get_roster(timeout=TIMEOUT)
    r = c.client_roster
    check("romeo@" + d in r, "romeo not in the roster: %s" % list(r))
    check(r["romeo@" + d]["name"] == "Romeo", "romeo's name %r" % r["romeo@" + d]["name"])
    check(r["romeo@" + d]["groups"] == ["Friends"], "romeo's groups %r" % r["romeo@" + d]["groups"])
    n = r["nurse@elsewhere.example"]
    check(sorted(n["groups"]) == ["Family", "Friends"], "nurse's groups %r" % n["groups"])
    if not args.no_ask:
        check(n["pending_out"], "the request to the nurse is not pending (ask): %r" % n)
    iq = await c["xep_0054"].get_vcard(c.boundjid.bare, cached=False, timeout=TIMEOUT)
    check(iq["vcard_temp"]["FN"] == "Juliet Capulet", "vCard FN %r" % iq["vcard_temp"]["FN"])
    nick = iq["vcard_temp"]["NICKNAME"]  # slixmpp gives a list
    check(nick in ("jules", ["jules"]), "vCard NICKNAME %r" % nick)
    iq = c.make_iq_get()
    iq.enable("private")
    iq["private"].xml.append(ET.Element("{%s}prefs" % NS_PREFS))
    res = await iq.send(timeout=TIMEOUT)
    got = res["private"].xml.find("{%s}prefs" % NS_PREFS)
    check(got is not None and got.text == "red", "private XML: %s" % res)
    if not args.no_pep:
        import hashlib
        sha = hashlib.sha1(AVATAR).hexdigest()
        res = await c["xep_0060"].get_item(c.boundjid.bare, "urn:xmpp:avatar:data", sha, timeout=TIMEOUT)
        data = res["pubsub"]["items"]["item"]["payload"]
        check(data is not None and data.text and __import__("base64").b64decode(data.text) == AVATAR, "avatar data: %s" % res)
    if args.no_archive:
        return
    bodies = []
    async for m in c["xep_0313"].iterate(rsm={"max": 50}):
        bodies.append(m["mam_result"]["forwarded"]["stanza"]["body"])
    check(bodies == BODIES, "archive %r" % bodies)


async def scenario(args):
    c = Client("%s@%s/e2e" % (args.user, args.domain), args.password, args.ca, mech=args.mech,
               plugins=["xep_0030", "xep_0049", "xep_0054", "xep_0059", "xep_0060", "xep_0084", "xep_0297", "xep_0313"])
    await c.start(args.port)
    try:
        if args.phase == "fill":
            await fill(c, args)
        else:
            await check_account(c, args)
    finally:
        c.disconnect()


if __name__ == "__main__":
    p = parser()
    p.add_argument("phase", choices=["fill", "check"])
    p.add_argument("--user", default="juliet")
    p.add_argument("--password", default="juliet-pw")
    p.add_argument("--mech", default="SCRAM-SHA-1")
    p.add_argument("--no-ask", action="store_true", help="the importer drops pending requests (ejabberd 23.01's import_piefxis)")
    p.add_argument("--no-pep", action="store_true", help="the exporter carries no PEP (ejabberd 23.01's piefxis)")
    p.add_argument("--no-archive", action="store_true", help="the export carried no archive (ejabberd 23.01's)")
    run(scenario, p.parse_args(), timeout=40, lines=60)
