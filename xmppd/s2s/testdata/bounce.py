#!/usr/bin/python3
"""One slixmpp client sends a message that must come back as an error.

Run with Debian's /usr/bin/python3 (python3-slixmpp), from
xmppd/s2s/failures_e2e_test.go. --client is as in federate.py; --to the
recipient. Prints OK and the error condition when the message bounces to
its sender, or FAIL (it was not answered within the time, or something
other than an error came back for it) and exits 1.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import federate  # noqa: E402
from federate import Client, Fail, parser, run  # noqa: E402


async def scenario(a, to, body):
    # An error without a body raises "message_error", not "message".
    a.add_event_handler("message_error", a.messages.put_nowait)
    await a.start()
    msg = a.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = "bounce-me"
    msg.send()
    loop = asyncio.get_event_loop()
    end = loop.time() + federate.TIMEOUT
    while loop.time() < end:
        try:
            m = await asyncio.wait_for(a.messages.get(), end - loop.time())
        except asyncio.TimeoutError:
            break
        if m["id"] == "bounce-me" and m["type"] == "error":
            return m["error"]["condition"]
    raise Fail("%s: no error for the message to %s within %ss" % (a.boundjid.bare, to, federate.TIMEOUT))


async def main(args):
    a = Client(args.client, args.ca)
    cond = await scenario(a, args.to, args.body)
    a.disconnect()
    return cond


if __name__ == "__main__":
    ap = parser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--body", default="must not arrive")
    args = ap.parse_args()
    args.client = args.client[0]  # one client here
    run(main, args, timeout=50, lines=200)
