#!/usr/bin/python3
"""XEP-0363 with a real client: alice's slixmpp finds the upload service
through disco, asks for a slot and PUTs a file with the xep_0363 plugin
(aiohttp), and sends the URL to bob in a message (with XEP-0066 OOB, as
clients do); bob, a second client, downloads it with Python's own
urllib and checks it is byte-identical. Run by upload_e2e_test.go with
Debian's /usr/bin/python3 (python3-slixmpp, python3-aiohttp). Prints
"OK <url>" and exits 0, or "FAIL: ..." with the recent log and exits 1.
"""

import argparse
import asyncio
import collections
import hashlib
import logging
import os
import sys
import urllib.request

import slixmpp
from slixmpp.plugins.xep_0363 import FileTooBig

TIMEOUT = 20
LOG = collections.deque(maxlen=80)


class Keep(logging.Handler):
    def emit(self, record):
        LOG.append(self.format(record))


class Fail(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Fail(what)


class Client(slixmpp.ClientXMPP):
    def __init__(self, args, user, password):
        super().__init__("%s@%s/e2e" % (user, args.domain), password, sasl_mech="SCRAM-SHA-256")
        self.ca_certs = args.ca
        for p in ("xep_0030", "xep_0066", "xep_0128", "xep_0363"):
            self.register_plugin(p)
        self.messages = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)
        # slixmpp 1.8 only knows tls-unique, which TLS 1.3 lacks: log in
        # without channel binding, as many clients do.
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
            raise Fail("%s: no session" % self.boundjid)
        self.send_presence()  # available: messages come to this session


def download(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        return r.status, dict(r.headers), r.read()


async def scenario(args):
    alice = Client(args, "alice", args.alice)
    await alice.login(args.port)
    bob = Client(args, "bob", args.bob)
    await bob.login(args.port)

    with open(args.file, "rb") as f:
        data = f.read()
    # Discovery as the plugin does it (disco#items of the domain, then
    # disco#info of each item for store/file + the namespace + the
    # max-file-size form). Done here step by step because Debian's
    # slixmpp 1.8.3 get_info_from_domain hands coroutines to asyncio.wait,
    # which Python 3.11 refuses (TypeError); upload_file then skips it.
    up = alice["xep_0363"]
    disco = alice["xep_0030"]
    items = await disco.get_items(jid=args.domain, timeout=TIMEOUT)
    found = None
    for item in items["disco_items"]["items"]:
        info = (await disco.get_info(jid=item[0], cached=False, timeout=TIMEOUT))["disco_info"]
        if ("store", "file") in [(i[0], i[1]) for i in info["identities"]] and \
                "urn:xmpp:http:upload:0" in info["features"]:
            found = item[0]
            for form in info.iterables:
                if form["values"].get("FORM_TYPE") == ["urn:xmpp:http:upload:0"] or \
                        form["values"].get("FORM_TYPE") == "urn:xmpp:http:upload:0":
                    up.max_file_size = int(form["values"]["max-file-size"])
    check(str(found) == "upload." + args.domain, "service found: %s in %s" % (found, items))
    check(up.max_file_size == args.max, "max-file-size from disco: %s" % up.max_file_size)
    up.upload_service = found
    url = await up.upload_file(args.file, domain=args.domain, timeout=TIMEOUT)
    check(url.endswith("/" + os.path.basename(args.file)), "URL %s keeps the file's name" % url)

    msg = alice.make_message(mto="bob@" + args.domain, mbody=url, mtype="chat")
    msg["oob"]["url"] = url
    msg.send()
    while True:
        m = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
        if m["type"] == "chat" and m["body"]:
            break
    got_url = m["oob"]["url"] or m["body"]
    check(got_url == url, "bob got %s" % got_url)
    status, headers, body = await asyncio.get_event_loop().run_in_executor(None, download, got_url)
    check(status == 200, "download status %s" % status)
    check(hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest() and len(body) == len(data),
          "download differs: %d bytes, want %d" % (len(body), len(data)))
    check(headers.get("X-Content-Type-Options") == "nosniff", "headers %s" % headers)

    # A file over the limit is refused by the client itself, from the
    # disco form.
    try:
        await up.upload_file("big.bin", size=args.max + 1, input_file=open(args.file, "rb"),
                             domain=args.domain, timeout=TIMEOUT)
        raise Fail("a file over max-file-size was accepted")
    except FileTooBig:
        pass

    alice.disconnect()
    bob.disconnect()
    await asyncio.sleep(0.1)
    return url


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--max", type=int, required=True)
    args = ap.parse_args()
    h = Keep()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        url = loop.run_until_complete(asyncio.wait_for(scenario(args), 90))
    except Exception as e:
        print("FAIL: %s: %s" % (type(e).__name__, e))
        print("\n".join(LOG))
        sys.exit(1)
    print("OK " + url)


if __name__ == "__main__":
    main()
