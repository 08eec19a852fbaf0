"""Debian's slixmpp as a real peer of the invite e2e test.

  invite_peer.py watch  HOST PORT JID PASSWORD CA  -- the admin: prints
      "ready" once logged in, then "contact JID SUBSCRIPTION" for each
      roster push and "message FROM BODY" for each chat message; exits
      after a contact with subscription both and a message, or 90 s.
  invite_peer.py send   HOST PORT JID PASSWORD CA TO BODY -- logs in and
      sends one chat message.
  invite_peer.py adhoc  HOST PORT JID PASSWORD CA  -- lists the server's
      ad-hoc commands (XEP-0050) and runs XEP-0401's invite command;
      prints "commands NODE..." and "field VAR VALUE" lines."""
import asyncio
import sys

import slixmpp


def client(jid, password, ca):
    c = slixmpp.ClientXMPP(jid, password, sasl_mech="SCRAM-SHA-256")
    c.ca_certs = ca
    # As login.py: no channel binding (slixmpp knows only tls-unique).
    fm = c["feature_mechanisms"]
    orig = fm.sasl_callback

    def creds(required, optional):
        r = orig(required, optional)
        if "channel_binding" in r:
            r["channel_binding"] = None
        return r
    fm.sasl_callback = creds
    return c


def say(*a):
    print(*a, flush=True)


async def main():
    mode, host, port, jid, password, ca = sys.argv[1:7]
    c = client(jid, password, ca)
    c.register_plugin("xep_0030")
    c.register_plugin("xep_0004")
    c.register_plugin("xep_0050")
    started = asyncio.get_event_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    c.add_event_handler("failed_all_auth", lambda _: started.done() or started.set_exception(RuntimeError("auth refused")))
    c.connect((host, int(port)), force_starttls=True)
    await asyncio.wait_for(started, 30)
    if mode == "watch":
        done = asyncio.get_event_loop().create_future()
        seen = {"both": False, "message": False}

        def check():
            if all(seen.values()) and not done.done():
                done.set_result(True)

        def on_roster(iq):
            for item_jid, item in iq["roster"]["items"].items():
                sub = item["subscription"]
                say("contact", item_jid, sub)
                if sub == "both":
                    seen["both"] = True
            check()

        def on_message(msg):
            if msg["type"] in ("chat", "normal") and msg["body"]:
                say("message", msg["from"].bare, msg["body"])
                seen["message"] = True
                check()
        c.add_event_handler("roster_update", on_roster)
        c.add_event_handler("message", on_message)
        await c.get_roster()
        c.send_presence()
        say("ready")
        try:
            await asyncio.wait_for(done, 90)
        except asyncio.TimeoutError:
            say("timeout")
    elif mode == "send":
        to, body = sys.argv[7:9]
        await c.get_roster()
        c.send_presence()
        c.send_message(mto=to, mbody=body, mtype="chat")
        say("sent")
        await asyncio.sleep(0.5)
    elif mode == "adhoc":
        domain = jid.split("@", 1)[1]
        items = await c["xep_0050"].get_commands(jid=domain)
        nodes = [i[1] for i in items["disco_items"]["items"]]
        say("commands", *nodes)
        done = asyncio.get_event_loop().create_future()

        def on_result(iq, session):
            form = iq["command"]["form"]
            for var, value in form.get_values().items():
                say("field", var, value)
            say("status", iq["command"]["status"])
            if not done.done():
                done.set_result(True)
            return session

        def on_error(iq, session):
            say("error", iq["error"]["condition"])
            if not done.done():
                done.set_result(False)
        c["xep_0050"].start_command(domain, "urn:xmpp:invite#invite",
                                    {"next": on_result, "error": on_error})
        await asyncio.wait_for(done, 30)
    c.disconnect(wait=1.0)
    await asyncio.sleep(0.2)


asyncio.run(main())
