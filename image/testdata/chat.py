#!/usr/bin/python3
"""Log two accounts into a Hearth box with slixmpp and pass one message.

Run with Debian's /usr/bin/python3 (python3-slixmpp). Prints "OK <seconds>"
and exits 0 when the receiver got the body; prints "FAIL <why>" and exits 1
otherwise. Used by the qemu image tests.

  chat.py --host 127.0.0.1 --port 5222 --domain hearth.local --ca cert.pem \
      --sender alice:PW --receiver bob:PW --body hello

With --mode store only the sender logs in and sends to the receiver's bare
JID, so the server must keep the message (offline storage in /perm); with
--mode fetch only the receiver logs in and must get that stored message,
delayed (XEP-0203). The image tests put an update or a rollback between the
two to prove the history survives it.
"""

import argparse
import asyncio
import sys
import time

import slixmpp
import slixmpp.exceptions


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, ca):
        super().__init__(jid, password)
        self.ca_certs = ca
        self.online = asyncio.Event()
        self.inbox = asyncio.Queue()
        self.failure = None
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("failed_all_auth", self._failed)
        self.add_event_handler("message", self.inbox.put_nowait)

    async def _start(self, _):
        self.send_presence()
        self.online.set()

    def _failed(self, _):
        self.failure = "authentication failed for %s" % self.boundjid.bare
        self.online.set()


async def store(args):
    t0 = time.monotonic()
    user, pw = args.sender.split(":", 1)
    c = Client("%s@%s/test" % (user, args.domain), pw, args.ca)
    c.register_plugin("xep_0199")
    c.connect((args.host, args.port))
    try:
        await asyncio.wait_for(c.online.wait(), args.timeout)
        if c.failure:
            return "FAIL " + c.failure
        rcpt = "%s@%s" % (args.receiver.split(":", 1)[0], args.domain)
        c.send_message(mto=rcpt, mbody=args.body, mtype="chat")
        # A ping answered after the message means the server has handled it.
        await c.plugin["xep_0199"].ping(jid=args.domain, timeout=args.timeout)
        return "OK %.1f" % (time.monotonic() - t0)
    except (asyncio.TimeoutError, slixmpp.exceptions.IqTimeout):
        return "FAIL timed out after %ss" % args.timeout
    finally:
        c.disconnect()


async def fetch(args):
    t0 = time.monotonic()
    user, pw = args.receiver.split(":", 1)
    c = Client("%s@%s/test" % (user, args.domain), pw, args.ca)
    c.register_plugin("xep_0203")
    c.connect((args.host, args.port))
    sender = "%s@%s" % (args.sender.split(":", 1)[0], args.domain)
    try:
        await asyncio.wait_for(c.online.wait(), args.timeout)
        if c.failure:
            return "FAIL " + c.failure
        deadline = time.monotonic() + args.timeout
        while True:
            msg = await asyncio.wait_for(c.inbox.get(), max(0.1, deadline - time.monotonic()))
            if msg["body"] != args.body:
                continue
            if msg["from"].bare != sender:
                return "FAIL message came from %s, want %s" % (msg["from"], sender)
            if not msg["delay"]["stamp"]:
                return "FAIL stored message has no delay stamp"
            return "OK %.1f" % (time.monotonic() - t0)
    except asyncio.TimeoutError:
        return "FAIL stored message %r not delivered within %ss" % (args.body, args.timeout)
    finally:
        c.disconnect()


async def main(args):
    if args.mode == "store":
        return await store(args)
    if args.mode == "fetch":
        return await fetch(args)
    t0 = time.monotonic()
    clients = []
    for spec in (args.receiver, args.sender):
        user, pw = spec.split(":", 1)
        c = Client("%s@%s/test" % (user, args.domain), pw, args.ca)
        c.connect((args.host, args.port))
        clients.append(c)
    receiver, sender = clients
    try:
        for c in clients:
            await asyncio.wait_for(c.online.wait(), args.timeout)
            if c.failure:
                return "FAIL " + c.failure
        sender.send_message(mto=receiver.boundjid.full, mbody=args.body, mtype="chat")
        deadline = time.monotonic() + args.timeout
        while True:
            msg = await asyncio.wait_for(receiver.inbox.get(), max(0.1, deadline - time.monotonic()))
            if msg["body"] == args.body:
                if msg["from"].bare != sender.boundjid.bare:
                    return "FAIL message came from %s, want %s" % (msg["from"], sender.boundjid.bare)
                return "OK %.1f" % (time.monotonic() - t0)
    except asyncio.TimeoutError:
        return "FAIL timed out after %ss (online: %s)" % (
            args.timeout, [c.online.is_set() for c in clients])
    finally:
        for c in clients:
            c.disconnect()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--sender", required=True)
    p.add_argument("--receiver", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--mode", choices=("chat", "store", "fetch"), default="chat")
    result = asyncio.run(main(p.parse_args()))
    print(result)
    sys.exit(0 if result.startswith("OK") else 1)
