#!/usr/bin/python3
"""Group chat as slixmpp's own plugins do it (XEP-0045 xep_0045, XEP-0092,
XEP-0054, XEP-0004), against xmppd's groups.<domain>:

  locking:  alice makes a room by joining it (201); bob's join is refused
            with item-not-found while it is locked; alice accepts the
            defaults (the instant-room request: an empty submitted form);
            bob gets in.
  iq:       alice asks bob's client its version through the room
            (room/bob) and gets its answer from room/bob; bob's vCard
            through the room comes from his account; an absent nick is
            item-not-found.
  voice:    alice makes the room moderated through the configuration form
            slixmpp fills in; carol joins as a visitor, her message is
            forbidden; she asks for voice (request_voice); alice gets the
            approval form, submits it with muc#request_allow; carol becomes
            a participant and bob gets her message.

Run by slixmpp_e2e_test.go with Debian's /usr/bin/python3. Prints "OK"
and exits 0, or "FAIL: ..." with the recent XML and exits 1.
"""

import argparse
import asyncio
import collections
import logging
import sys

import slixmpp
from slixmpp.exceptions import IqError, PresenceError

TIMEOUT = 10
LOG = collections.deque(maxlen=80)
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_REQUEST = "http://jabber.org/protocol/muc#request"


class Keep(logging.Handler):
    def emit(self, record):
        LOG.append(self.format(record))


class Fail(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Fail(what)


def codes(pres):
    x = pres.xml.find("{%s}x" % NS_MUC_USER)
    if x is None:
        return set()
    return {s.get("code") for s in x.findall("{%s}status" % NS_MUC_USER)}


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, args):
        super().__init__("%s@%s/e2e" % (user, args.domain), user + "-pw", sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        self.label = user
        for p in ("xep_0004", "xep_0030", "xep_0045", "xep_0054", "xep_0092"):
            self.register_plugin(p)
        self["xep_0092"].software_name = user + "client"
        self.presences = asyncio.Queue()
        self.messages = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.forms = asyncio.Queue()
        self.add_event_handler("groupchat_presence", self.presences.put_nowait)
        self.pres_errors = asyncio.Queue()
        self.add_event_handler("presence_error", self.pres_errors.put_nowait)
        self.add_event_handler("groupchat_presence", self.pres_errors.put_nowait)
        self.add_event_handler("groupchat_message", self.messages.put_nowait)
        self.add_event_handler("groupchat_message_error", self.errors.put_nowait)

        # A message with a data form is xep_0004's "message_xform" (not
        # "message").
        self.add_event_handler("message_xform", self.forms.put_nowait)
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
            raise Fail("%s: no session" % self.label)
        self.send_presence()

    async def join(self, room, nick):
        try:
            return await self["xep_0045"].join_muc_wait(room, nick, maxstanzas=0, timeout=TIMEOUT)
        except PresenceError as e:
            raise Fail("%s: join %s refused: %s" % (self.label, room, e.presence))
        except asyncio.TimeoutError:
            raise Fail("%s: join %s: no self-presence and subject" % (self.label, room))

    async def next(self, q, what, pred):
        while True:
            try:
                x = await asyncio.wait_for(q.get(), TIMEOUT)
            except asyncio.TimeoutError:
                raise Fail("%s: no %s" % (self.label, what))
            if pred(x):
                return x


async def scenario(args):
    alice, bob, carol = Client("alice", args), Client("bob", args), Client("carol", args)
    for c in (alice, bob, carol):
        await c.login(args.port)
    room = slixmpp.JID("slixroom@groups." + args.domain)

    # Locking.
    res = await alice.join(room, "alice")
    check("201" in codes(res[0]), "alice's self-presence on creating the room lacks 201: %s" % res[0])
    # join_muc_wait knows the error only when it echoes the MUC <x/>
    # (prosody's does not): wait for any presence from the room.
    bob["xep_0045"].join_muc(room, "bob", maxhistory="0")
    p = await bob.next(bob.pres_errors, "an answer to joining the locked room",
                       lambda p: p["from"] == room.bare + "/bob")
    check(p["type"] == "error" and p["error"]["condition"] == "item-not-found",
          "bob joining the locked room: %s" % p)
    instant = alice["xep_0004"].make_form("submit")
    await alice["xep_0045"].set_room_config(room, instant, timeout=TIMEOUT)
    await bob.join(room, "bob")
    await alice.next(alice.presences, "bob's join", lambda p: p["from"] == room.bare + "/bob")

    # IQs to occupants.
    v = await alice["xep_0092"].get_version(slixmpp.JID(room.bare + "/bob"), timeout=TIMEOUT)
    check(v["software_version"]["name"] == "bobclient" and v["from"] == room.bare + "/bob",
          "bob's version through the room: %s" % v)
    card = bob["xep_0054"].make_vcard()
    card["FN"] = "Bob Builder"
    await bob["xep_0054"].publish_vcard(card, timeout=TIMEOUT)
    got = await alice["xep_0054"].get_vcard(slixmpp.JID(room.bare + "/bob"), cached=False, timeout=TIMEOUT)
    check(got["vcard_temp"]["FN"] == "Bob Builder", "bob's vCard through the room: %s" % got)
    try:
        await alice["xep_0092"].get_version(slixmpp.JID(room.bare + "/nobody"), timeout=TIMEOUT)
        raise Fail("a version from an absent occupant")
    except IqError as e:
        check(e.iq["error"]["condition"] == "item-not-found", "absent occupant: %s" % e.iq)

    # Voice requests.
    form = await alice["xep_0045"].get_room_config(room, timeout=TIMEOUT)
    form.set_values({"muc#roomconfig_moderatedroom": True})
    await alice["xep_0045"].set_room_config(room, form, timeout=TIMEOUT)
    res = await carol.join(room, "carol")
    check(res[0]["muc"]["role"] == "visitor", "carol in a moderated room: %s" % res[0])
    carol.send_message(mto=room, mbody="may I?", mtype="groupchat")
    e = await carol.next(carol.errors, "error for a visitor's message", lambda m: True)
    check(e["error"]["condition"] == "forbidden", "visitor's message: %s" % e)
    carol["xep_0045"].request_voice(room, "participant")
    req = await alice.next(alice.forms, "the voice request", lambda m: m["from"] == room.bare)
    fields = req["form"].get_values()
    ft = fields.get("FORM_TYPE")
    if isinstance(ft, list):  # slixmpp reads the hidden field as multi
        ft = ft[0] if ft else None
    check(ft == NS_REQUEST and fields.get("muc#roomnick") == "carol",
          "approval form: %s %r" % (req, fields))
    answer = alice.make_message(mto=room)
    f = answer["form"]
    f["type"] = "submit"
    f.add_field(var="FORM_TYPE", value=NS_REQUEST)
    f.add_field(var="muc#role", value="participant")
    f.add_field(var="muc#jid", value=fields["muc#jid"])
    f.add_field(var="muc#roomnick", value="carol")
    f.add_field(var="muc#request_allow", ftype="boolean", value=True)
    answer.send()
    p = await carol.next(carol.presences, "voice granted",
                         lambda p: p["from"] == room.bare + "/carol" and p["muc"]["role"] == "participant")
    carol.send_message(mto=room, mbody="thank you", mtype="groupchat")
    await bob.next(bob.messages, "carol's message", lambda m: m["body"] == "thank you")

    for c in (alice, bob, carol):
        c.disconnect()
    print("OK")


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
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(scenario(args), 60))
    except (Fail, asyncio.TimeoutError, IqError) as e:
        print("FAIL: %s" % (str(e) or repr(e)))
        print("\n".join(LOG))
        sys.exit(1)


if __name__ == "__main__":
    main()
