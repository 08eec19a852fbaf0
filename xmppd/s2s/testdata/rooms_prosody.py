#!/usr/bin/python3
"""Group chat across federation between Hearth and Debian's prosody, as
their members' clients see it.

Run with Debian's /usr/bin/python3 (python3-slixmpp), from
xmppd/s2s/rooms_prosody_e2e_test.go. Clients are given as in federate.py
(JID:PASSWORD:HOST:PORT:MECH): --client P (on prosody), H (on Hearth).
--hearth-room is a room JID on Hearth's group chat service, --prosody-room
one on prosody's MUC component. Both rooms are joined with slixmpp's
xep_0045 as it comes (join_muc_wait with no history request, no options).

  1. H makes the room on Hearth (instant), P joins it from prosody: P's
     join lists H as an occupant, H sees P's presence from the room, a
     group chat message goes each way, and H sees P leave.
  2. P makes the room on prosody (instant), H joins it from Hearth: the
     same checks the other way round.
Prints OK, or FAIL and the tail of slixmpp's log, and exits 1.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import federate  # noqa: E402
from federate import Client, parser, run  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/xmpptest"))
from slixtest import check  # noqa: E402


def muc_client(spec, ca):
    c = Client(spec, ca)
    for p in ("xep_0030", "xep_0004", "xep_0045"):
        c.register_plugin(p)
    # xep_0045 takes a room's presences off the "presence" event.
    c.room_presences = c.queue("groupchat_presence")
    return c


async def room_across(owner, guest, room, owner_nick, guest_nick):
    """owner (on the room's server) makes room; guest (on the other
    server) joins; each sees the other's presence and message."""
    to = federate.TIMEOUT
    await owner["xep_0045"].join_muc_wait(room, owner_nick, timeout=to)
    # Accept the default configuration (an instant room): both servers
    # keep a new room locked until its owner configures it (XEP-0045 10.1).
    await owner["xep_0045"].set_room_config(room, owner["xep_0004"].make_form("submit"), timeout=to)
    # join_muc_wait returns once the room sent guest its own presence and
    # the subject (it raises on an error presence); the occupants it lists
    # are the presences that came before its own.
    _, _, occupants, _ = await guest["xep_0045"].join_muc_wait(room, guest_nick, timeout=to)
    check(any(o["from"] == room + "/" + owner_nick for o in occupants),
          "%s: %s not among the occupants %s" % (guest.boundjid, owner_nick, [str(o["from"]) for o in occupants]))
    await owner.want(owner.room_presences, "%s's presence in %s" % (guest_nick, room),
                     lambda p: p["from"] == room + "/" + guest_nick and p["type"] in ("available", ""))
    owner.send_message(mto=room, mbody="welcome, " + guest_nick, mtype="groupchat")
    await guest.want(guest.messages, owner_nick + "'s group chat message",
                     lambda m: m["type"] == "groupchat" and m["from"] == room + "/" + owner_nick
                     and m["body"] == "welcome, " + guest_nick)
    guest.send_message(mto=room, mbody="thanks from " + guest.boundjid.bare, mtype="groupchat")
    await owner.want(owner.messages, guest_nick + "'s group chat message",
                     lambda m: m["type"] == "groupchat" and m["from"] == room + "/" + guest_nick
                     and m["body"] == "thanks from " + guest.boundjid.bare)
    # guest leaves; owner sees it go.
    guest["xep_0045"].leave_muc(room, guest_nick)
    await owner.want(owner.room_presences, "%s leaving %s" % (guest_nick, room),
                     lambda p: p["from"] == room + "/" + guest_nick and p["type"] == "unavailable")


async def main(args):
    p, h = (muc_client(s, args.ca) for s in args.client)
    await p.start()
    await h.start()
    await room_across(h, p, args.hearth_room, "hbob", "palice")
    await room_across(p, h, args.prosody_room, "palice", "hbob")
    for x in (p, h):
        x.disconnect()


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--hearth-room", required=True)
    ap.add_argument("--prosody-room", required=True)
    run(main, ap.parse_args(), timeout=80, lines=200)
