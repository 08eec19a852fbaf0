"""A chat peer over TCP for the browser chat test (Debian's slixmpp).

Usage: peer.py HOST PORT JID PASSWORD CA_FILE
Prints "ready" once online, then one line per message received:
"got FROM LENGTH TEXT-START" (TEXT-START: the first 60 characters, no
line breaks), and for a body that is a URL also "url FROM URL". Reads
commands on stdin: "send JID TEXT" (TEXT may be "@10000" for 10,000
characters of 'x'); "fetch URL" downloads it (trusting only CA_FILE) and
prints "fetched URL SHA256-HEX" or "fetch-failed URL ERROR"; "room ROOM
JID..." creates ROOM members-only with real addresses shown to members
(what OMEMO in a room needs), makes each JID a member, leaves it and
prints "room-ready ROOM" (or "room-failed ROOM ERROR"). Ends on EOF or
after 5 minutes."""
import asyncio
import hashlib
import socket
import ssl
import sys
import urllib.request

import slixmpp

# The box's domain (hearth.localhost in the test) and its subdomains are
# this machine: the upload URLs name the domain, as on a real box.
_getaddrinfo = socket.getaddrinfo


def _local(host, *args, **kw):
    if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kw)


socket.getaddrinfo = _local


def fetch(url, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
        return hashlib.sha256(r.read()).hexdigest()


async def main():
    host, port, jid, password, ca = sys.argv[1:6]
    c = slixmpp.ClientXMPP(jid, password, sasl_mech="SCRAM-SHA-256")
    c.ca_certs = ca
    fm = c["feature_mechanisms"]
    orig = fm.sasl_callback

    def creds(required, optional):
        # slixmpp knows only tls-unique (none in TLS 1.3): no channel binding.
        r = orig(required, optional)
        if "channel_binding" in r:
            r["channel_binding"] = None
        return r
    fm.sasl_callback = creds
    ready = asyncio.get_event_loop().create_future()

    def start(_):
        c.send_presence()
        if not ready.done():
            ready.set_result(True)

    def msg(m):
        if m["type"] in ("chat", "normal") and m["body"]:
            b = m["body"]
            print("got %s %d %s" % (m["from"].bare, len(b), b[:60].replace("\n", " ")), flush=True)
            if b.startswith(("http://", "https://")) and " " not in b.strip():
                print("url %s %s" % (m["from"].bare, b.strip()), flush=True)
    c.register_plugin("xep_0045")
    c.register_plugin("xep_0004")

    async def make_room(room, members):
        muc = c["xep_0045"]
        await muc.join_muc_wait(slixmpp.JID(room), "carol", maxstanzas=0, timeout=20)
        form = await muc.get_room_config(slixmpp.JID(room), timeout=20)
        form["type"] = "submit"
        form.set_values({"muc#roomconfig_membersonly": True, "muc#roomconfig_whois": "anyone",
                         "muc#roomconfig_persistentroom": True})
        await muc.set_room_config(slixmpp.JID(room), form, timeout=20)
        for m in members:
            await muc.set_affiliation(slixmpp.JID(room), "member", jid=slixmpp.JID(m), timeout=20)
        muc.leave_muc(slixmpp.JID(room), "carol")
    c.add_event_handler("session_start", start)
    c.add_event_handler("message", msg)
    c.add_event_handler("failed_all_auth", lambda _: print("refused", flush=True))
    c.connect((host, int(port)), force_starttls=True)
    await asyncio.wait_for(ready, 30)
    print("ready", flush=True)
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands():
        while True:
            line = await reader.readline()
            if not line:
                return
            parts = line.decode().rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[0] == "send":
                text = "x" * int(parts[2][1:]) if parts[2].startswith("@") else parts[2]
                c.send_message(mto=parts[1], mbody=text, mtype="chat")
            elif len(parts) == 3 and parts[0] == "room":
                try:
                    await make_room(parts[1], parts[2].split())
                    print("room-ready %s" % parts[1], flush=True)
                except Exception as e:  # reported to the test, which fails
                    print("room-failed %s %r" % (parts[1], e), flush=True)
            elif len(parts) == 2 and parts[0] == "fetch":
                try:
                    sum = await asyncio.get_event_loop().run_in_executor(None, fetch, parts[1], ca)
                    print("fetched %s %s" % (parts[1], sum), flush=True)
                except Exception as e:  # reported to the test, which fails
                    print("fetch-failed %s %s" % (parts[1], str(e).replace("\n", " ")), flush=True)
    try:
        await asyncio.wait_for(commands(), 300)
    except asyncio.TimeoutError:
        pass
    c.disconnect(wait=1.0)
    await asyncio.sleep(0.2)


asyncio.run(main())
