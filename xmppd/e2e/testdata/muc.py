#!/usr/bin/python3
"""Group-chat scenarios (XEP-0045) for the e2e tests, driven by slixmpp's
xep_0045 plugin, run against xmppd's groups.<domain> or prosody's MUC
component (HEARTH_E2E_SERVER=prosody).

  live:  alice makes a persistent room, bob joins, messages and subject,
         bob reconnects and rejoins with history, a non-occupant's message
         is refused, carol is kicked, then alice sends numbered messages and
         prints "ACKED n" for each one the room echoed back (the room fans a
         message out only after it is committed).
  after: (after the server was killed with SIGKILL and restarted) bob
         joins and must get, as history and from the room's archive, every
         message of --acked.

Uses scenarios.py's Client (same directory) for login and queues.
"""

import argparse
import asyncio
import sys
import traceback

from slixmpp.exceptions import PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from scenarios import Client, Fail, check, LOG, setup_logging, error_condition

NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
T = 10


def room_of(args):
    return "club@groups." + args.domain


def codes(pres):
    x = pres.xml.find("{%s}x" % NS_MUC_USER)
    if x is None:
        return set()
    return {s.get("code") for s in x.findall("{%s}status" % NS_MUC_USER)}


async def login(args, name):
    user, pw = next(u.split(":", 1) for u in args.user if u.startswith(name + ":"))
    c = Client(args, user, pw, resource="muc")
    c.register_plugin("xep_0045")
    # slixmpp fires "presence" only for some room presences (its roster
    # swallows repeats from a room JID); the plugin's event has them all.
    c.add_event_handler("groupchat_presence", c.presences.put_nowait)
    c.add_event_handler("groupchat_subject", c.messages.put_nowait)
    # "message" needs a <body/>: an error without the original (prosody's)
    # comes only as the plugin's event.
    c.add_event_handler("groupchat_message_error", c.messages.put_nowait)
    await c.start()
    return c


async def join(c, room, nick, **kw):
    try:
        return await c.plugin["xep_0045"].join_muc_wait(room, nick, timeout=T, **kw)
    except PresenceError as e:
        raise Fail("%s: join %s as %s refused: %s" % (c.label, room, nick, e.presence))
    except asyncio.TimeoutError:
        raise Fail("%s: join %s as %s: no self-presence and subject within %ss" % (c.label, room, nick, T))


async def configure(c, room):
    form = ("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
            "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
            "<field var='muc#roomconfig_publicroom'><value>1</value></field>"
            "<field var='muc#roomconfig_changesubject'><value>0</value></field>"
            "</x></query>")
    r = await c.iq("set", room, form)
    check(r["type"] == "result", "%s: room configuration refused: %s" % (c.label, r))


def groupchat(body):
    return lambda m: m["type"] == "groupchat" and m["body"] == body


async def live(args):
    room = room_of(args)
    alice, bob, carol = await login(args, "alice"), await login(args, "bob"), await login(args, "carol")
    res = await join(alice, room, "alice")
    check("110" in codes(res[0]) and "201" in codes(res[0]),
          "alice's self-presence on creating the room lacks 110/201: %s" % res[0])
    await configure(alice, room)
    await join(bob, room, "bob", maxstanzas=0)
    await alice.next_presence("bob's join", lambda p: str(p["from"]) == room + "/bob")

    alice.send_message(mto=room, mbody="hello 1", mtype="groupchat")
    for c in (alice, bob):
        m = await c.next_message("hello 1", groupchat("hello 1"))
        check(str(m["from"]) == room + "/alice", "%s: groupchat from %s" % (c.label, m["from"]))

    alice.plugin["xep_0045"].set_subject(room, "Club news")
    await bob.next_message("subject", lambda m: m["subject"] == "Club news")

    # bob leaves by disconnecting, reconnects, rejoins with history.
    await bob.stop()
    await alice.next_presence("bob gone", lambda p: str(p["from"]) == room + "/bob" and p["type"] == "unavailable")
    bob = await login(args, "bob")
    res = await join(bob, room, "bob", maxstanzas=5)
    bodies = [m["body"] for m in res[3]]
    check("hello 1" in bodies, "bob's history after reconnecting: %s" % bodies)
    check(res[1]["subject"] == "Club news", "subject on rejoin: %s" % res[1])

    # A non-occupant's room message is refused and reaches nobody.
    carol.send_message(mto=room, mbody="not in the room", mtype="groupchat")
    e = await carol.next_message("error for a non-occupant", lambda m: m["type"] == "error")
    check(error_condition(e)[1] == "not-acceptable", "non-occupant message: %s" % e)

    # carol joins and is kicked.
    await join(carol, room, "carol", maxstanzas=0)
    await alice.next_presence("carol's join", lambda p: str(p["from"]) == room + "/carol")
    await alice.plugin["xep_0045"].set_role(room, "carol", "none", reason="test")
    p = await carol.next_presence("kick", lambda p: p["type"] == "unavailable" and str(p["from"]) == room + "/carol")
    check("307" in codes(p), "kick presence lacks 307: %s" % p)
    await bob.next_presence("carol kicked", lambda p: p["type"] == "unavailable" and str(p["from"]) == room + "/carol")
    carol.send_message(mto=room, mbody="kicked", mtype="groupchat")
    e = await carol.next_message("error after the kick", lambda m: m["type"] == "error")

    for i in range(1, args.count + 1):
        body = "numbered %d" % i
        alice.send_message(mto=room, mbody=body, mtype="groupchat")
        await alice.next_message(body, groupchat(body))
        print("ACKED %d" % i, flush=True)
    print("OK live", flush=True)


async def after(args):
    room = room_of(args)
    bob = await login(args, "bob")
    want = ["numbered %d" % i for i in range(1, args.acked + 1)]
    # History is the newest 10 (rooms keep 20 by default, here and in
    # prosody); the archive below has them all.
    res = await join(bob, room, "bob", maxstanzas=10)
    bodies = [m["body"] for m in res[3]]
    missing = [b for b in want[-10:] if b not in bodies]
    check(not missing, "history after SIGKILL lacks %s (got %s)" % (missing, bodies))
    # The room's archive (XEP-0313), last page.
    got = []

    def on_msg(m):
        res = m.xml.find("{%s}result" % NS_MAM)
        if res is not None:
            fw = res.find("{%s}forwarded" % NS_FORWARD)
            inner = fw.find("{jabber:client}message")
            got.append(inner.findtext("{jabber:client}body"))
    bob.register_handler(Callback("mam result", MatchXPath("{jabber:client}message/{%s}result" % NS_MAM), on_msg))
    r = await bob.iq("set", room, "<query xmlns='urn:xmpp:mam:2' queryid='q1'>"
                     "<set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query>")
    check(r["type"] == "result", "room MAM query: %s" % r)
    missing = [b for b in want if b not in got]
    check(not missing, "room archive after SIGKILL lacks %s (got %s)" % (missing, got))
    print("OK after", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--c2s", type=int, required=True)
    ap.add_argument("--c2s-tls", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--user", action="append", default=[])
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--acked", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=80)
    ap.add_argument("scenario", choices=["live", "after"])
    args = ap.parse_args()
    setup_logging()
    fn = live if args.scenario == "live" else after
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(fn(args), args.timeout))
    except (Fail, asyncio.TimeoutError) as e:
        print("FAIL %s: %s" % (args.scenario, e or "timeout"), flush=True)
        print("--- last slixmpp log lines:\n" + "\n".join(LOG), flush=True)
        sys.exit(1)
    except Exception:
        print("FAIL %s: the script raised:\n%s" % (args.scenario, traceback.format_exc()), flush=True)
        print("--- last slixmpp log lines:\n" + "\n".join(LOG), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
