#!/usr/bin/python3
"""Federation between two Hearths, as their members' clients see it.

Run with Debian's /usr/bin/python3 (python3-slixmpp), from
xmppd/s2s/hearth2_e2e_test.go. Clients are given as in federate.py
(JID:PASSWORD:HOST:PORT:MECH): --client A (on the room's server), B (on the
other), C (B's server, offline at first). --room is a room JID on A's
server's group chat service.

  1. federate.py's scenario between A and B: messages both ways and a
     presence subscription both ways.
  2. A writes to C, who is offline; then A writes to B. The two go out on
     the same stream in order, so once B has the second, C's server has
     handled the first. C logs in and must get it (offline storage).
  3. A makes the room (instant), B (remote) joins it, each sends a
     group chat message and the other receives it from the room.
Prints OK, or FAIL and the tail of slixmpp's log, and exits 1.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import federate  # noqa: E402
from federate import Client, parser, run  # noqa: E402


def muc_client(spec, ca):
    c = Client(spec, ca)
    for p in ("xep_0030", "xep_0004", "xep_0045"):
        c.register_plugin(p)
    return c


async def scenario(a, b, c, room):
    await federate.scenario(a, b)
    A, B, C = a.boundjid.bare, b.boundjid.bare, c.boundjid.bare

    # 2. Offline delivery across.
    a.send_message(mto=C, mbody="while you were away", mtype="chat")
    a.send_message(mto=B, mbody="marker after the offline one", mtype="chat")
    await b.want(b.messages, "the marker from " + A,
                 lambda m: m["from"].bare == A and m["body"] == "marker after the offline one")
    await c.start()
    await c.want(c.messages, "the message stored while offline",
                 lambda m: m["from"].bare == A and m["body"] == "while you were away")

    # 3. A room on A's server with a remote occupant.
    to = federate.TIMEOUT
    await a["xep_0045"].join_muc_wait(room, "alice", maxstanzas=0, timeout=to)
    await a["xep_0045"].set_room_config(room, a["xep_0004"].make_form("submit"), timeout=to)
    # join_muc_wait returns once the room sent B its own presence (it
    # raises on an error presence).
    await b["xep_0045"].join_muc_wait(room, "bob", maxstanzas=0, timeout=to)
    a.send_message(mto=room, mbody="welcome, remote bob", mtype="groupchat")
    await b.want(b.messages, "alice's group chat message",
                 lambda m: m["type"] == "groupchat" and m["from"] == room + "/alice" and m["body"] == "welcome, remote bob")
    b.send_message(mto=room, mbody="thanks from " + B, mtype="groupchat")
    await a.want(a.messages, "bob's group chat message",
                 lambda m: m["type"] == "groupchat" and m["from"] == room + "/bob" and m["body"] == "thanks from " + B)


async def main(args):
    a, b, c = (muc_client(s, args.ca) for s in args.client)
    await scenario(a, b, c, args.room)
    for x in (a, b, c):
        x.disconnect()


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--room", required=True)
    run(main, ap.parse_args(), timeout=80, lines=200)
