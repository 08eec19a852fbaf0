#!/usr/bin/python3
"""One slixmpp client sends a message that must come back as an error.

Run with Debian's /usr/bin/python3 (python3-slixmpp), from
xmppd/s2s/failures_e2e_test.go. --client is as in federate.py; --to the
recipient. Prints OK and the error condition when the message bounces to
its sender, or FAIL (it was not answered within the time, or something
other than an error came back for it) and exits 1.
"""

import argparse
import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import federate  # noqa: E402
from federate import Client, Fail  # noqa: E402


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--body", default="must not arrive")
    args = ap.parse_args()
    h = federate._Mem()
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)
    a = Client(args.client, args.ca)
    loop = asyncio.get_event_loop()
    try:
        cond = loop.run_until_complete(scenario(a, args.to, args.body))
    except Exception as e:
        print("FAIL", repr(e))
        print("\n".join(federate.LOG))
        sys.exit(1)
    a.disconnect()
    print("OK", cond)


if __name__ == "__main__":
    main()
