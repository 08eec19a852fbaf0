#!/usr/bin/python3
"""Asks upload.<domain> for one slot with slixmpp's xep_0363 plugin and
prints its PUT URL (for rss_e2e_test.go, which PUTs to a real xmppd
process and watches its memory). Usage: slot.py JID PASSWORD PORT CA
FILENAME SIZE CONTENT-TYPE."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
from slixtest import Client  # noqa: E402


async def main(jid, password, port, ca, name, size, ctype):
    c = Client(jid + "/rss", password, ca, plugins=["xep_0363"], timeout=20)
    await c.start(int(port))
    iq = await c["xep_0363"].request_slot("upload." + jid.split("@")[1], name, int(size), ctype, timeout=20)
    print("PUT " + iq["http_upload_slot"]["put"]["url"])
    c.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:8]), 60))
