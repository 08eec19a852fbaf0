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

import asyncio
import os
import sys

import slixmpp
from slixmpp.exceptions import IqError, PresenceError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import TIMEOUT, Fail, check, parser, run  # noqa: E402

NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_REQUEST = "http://jabber.org/protocol/muc#request"


def codes(pres):
    x = pres.xml.find("{%s}x" % NS_MUC_USER)
    if x is None:
        return set()
    return {s.get("code") for s in x.findall("{%s}status" % NS_MUC_USER)}


class Client(slixtest.Client):
    def __init__(self, user, args):
        super().__init__("%s@%s/e2e" % (user, args.domain), user + "-pw", args.ca,
                         plugins=["xep_0004", "xep_0030", "xep_0045", "xep_0054", "xep_0092"])
        self.label = user
        self["xep_0092"].software_name = user + "client"
        self.presences = self.queue("groupchat_presence")
        self.pres_errors = self.queue("presence_error", "groupchat_presence")
        self.messages = self.queue("groupchat_message")
        self.errors = self.queue("groupchat_message_error")
        # A message with a data form is xep_0004's "message_xform" (not
        # "message").
        self.forms = self.queue("message_xform")

    async def login(self, port):
        await self.start(port)
        self.send_presence()

    async def join(self, room, nick):
        try:
            return await self["xep_0045"].join_muc_wait(room, nick, maxstanzas=0, timeout=TIMEOUT)
        except PresenceError as e:
            raise Fail("%s: join %s refused: %s" % (self.label, room, e.presence))
        except asyncio.TimeoutError:
            raise Fail("%s: join %s: no self-presence and subject" % (self.label, room))

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
    p = await bob.want(bob.pres_errors, "an answer to joining the locked room",
                       lambda p: p["from"] == room.bare + "/bob")
    check(p["type"] == "error" and p["error"]["condition"] == "item-not-found",
          "bob joining the locked room: %s" % p)
    instant = alice["xep_0004"].make_form("submit")
    await alice["xep_0045"].set_room_config(room, instant, timeout=TIMEOUT)
    await bob.join(room, "bob")
    await alice.want(alice.presences, "bob's join", lambda p: p["from"] == room.bare + "/bob")

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
    e = await carol.want(carol.errors, "error for a visitor's message", lambda m: True)
    check(e["error"]["condition"] == "forbidden", "visitor's message: %s" % e)
    carol["xep_0045"].request_voice(room, "participant")
    req = await alice.want(alice.forms, "the voice request", lambda m: m["from"] == room.bare)
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
    p = await carol.want(carol.presences, "voice granted",
                         lambda p: p["from"] == room.bare + "/carol" and p["muc"]["role"] == "participant")
    carol.send_message(mto=room, mbody="thank you", mtype="groupchat")
    await bob.want(bob.messages, "carol's message", lambda m: m["body"] == "thank you")

    for c in (alice, bob, carol):
        c.disconnect()


if __name__ == "__main__":
    run(scenario, parser().parse_args())
