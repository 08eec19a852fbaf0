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

import argparse
import asyncio
import collections
import logging
import sys

import slixmpp
from slixmpp.xmlstream import ET

TIMEOUT = 10
LOG = collections.deque(maxlen=60)
BODIES = ["history %d: O Romeo, Romeo" % i for i in range(1, 4)]
NS_PREFS = "urn:example:prefs"
AVATAR = b"\x89PNG not really an avatar"


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
        super().__init__("%s@%s/e2e" % (args.user, args.domain), args.password, sasl_mech=args.mech)
        self.ca_certs = args.ca
        for p in ("xep_0030", "xep_0049", "xep_0054", "xep_0059", "xep_0060", "xep_0084", "xep_0297", "xep_0313"):
            self.register_plugin(p)
        # slixmpp 1.8 knows only tls-unique, which TLS 1.3 does not have.
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


async def main(args):
    c = Client(args)
    await c.login(args.port)
    try:
        if args.phase == "fill":
            await fill(c, args)
        else:
            await check_account(c, args)
    finally:
        c.disconnect()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=["fill", "check"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--user", default="juliet")
    p.add_argument("--password", default="juliet-pw")
    p.add_argument("--mech", default="SCRAM-SHA-1")
    p.add_argument("--no-ask", action="store_true", help="the importer drops pending requests (ejabberd 23.01's import_piefxis)")
    p.add_argument("--no-pep", action="store_true", help="the exporter carries no PEP (ejabberd 23.01's piefxis)")
    p.add_argument("--no-archive", action="store_true", help="the export carried no archive (ejabberd 23.01's)")
    args = p.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        asyncio.run(asyncio.wait_for(main(args), 40))
    except (Fail, asyncio.TimeoutError, slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout) as e:
        print("FAIL: %r" % e)
        print("\n".join(LOG))
        sys.exit(1)
    print("OK")
