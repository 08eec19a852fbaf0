#!/usr/bin/python3
"""XEP-0363 with a real client: alice's slixmpp finds the upload service
through disco, asks for a slot and PUTs a file with the xep_0363 plugin
(aiohttp), and sends the URL to bob in a message (with XEP-0066 OOB, as
clients do); bob, a second client, downloads it with Python's own
urllib and checks it is byte-identical. Run by upload_e2e_test.go with
Debian's /usr/bin/python3 (python3-slixmpp, python3-aiohttp). Prints
"OK <url>" and exits 0, or "FAIL: ..." with the recent log and exits 1.
"""

import asyncio
import hashlib
import os
import sys
import urllib.request

from slixmpp.plugins.xep_0363 import FileTooBig

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
import slixtest  # noqa: E402
from slixtest import Fail, check, parser, run  # noqa: E402

TIMEOUT = 20


class Client(slixtest.Client):
    def __init__(self, args, user, password):
        super().__init__("%s@%s/e2e" % (user, args.domain), password, args.ca,
                         plugins=["xep_0030", "xep_0066", "xep_0128", "xep_0363"], timeout=TIMEOUT)
        self.messages = self.queue("message")

    async def login(self, port):
        await self.start(port)
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
    m = await bob.want(bob.messages, "alice's message with the URL", lambda m: m["type"] == "chat" and m["body"])
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


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--alice", required=True)
    ap.add_argument("--bob", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--max", type=int, required=True)
    run(scenario, ap.parse_args(), timeout=90)
