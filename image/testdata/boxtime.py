#!/usr/bin/python3
"""Ask a Hearth box for its clock (XEP-0202 entity time) over STARTTLS.

Run with Debian's /usr/bin/python3 (python3-slixmpp). The --ca file is the
certificate the box made itself, so the login also proves that OpenSSL
accepts it at this machine's clock. Prints "OK <UTC time, ISO 8601>" and
exits 0, or "FAIL <why>" and exits 1. Used by TestPiWithoutBatteryClock.

  boxtime.py --port 5222 --domain hearth.local --ca cert.pem --user alice:PW
"""

import argparse
import asyncio
import sys

import slixmpp
import slixmpp.exceptions


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, ca):
        super().__init__(jid, password)
        self.ca_certs = ca
        self.online = asyncio.Event()
        self.failure = None
        self.add_event_handler("session_start", lambda _: self.online.set())
        self.add_event_handler("failed_all_auth", self._failed)
        self.add_event_handler("connection_failed", self._failed)
        # OpenSSL refused the box's certificate (e.g. expired at this
        # machine's clock): say so instead of waiting for the timeout.
        self.add_event_handler("ssl_invalid_chain", self._failed)

    def _failed(self, why):
        self.failure = "no session: %s" % (why,)
        self.online.set()


async def main(args):
    user, pw = args.user.split(":", 1)
    c = Client("%s@%s/clock" % (user, args.domain), pw, args.ca)
    c.register_plugin("xep_0202")
    c.connect((args.host, args.port))
    try:
        await asyncio.wait_for(c.online.wait(), args.timeout)
        if c.failure:
            return "FAIL " + c.failure
        iq = await c.plugin["xep_0202"].get_entity_time(args.domain, timeout=args.timeout)
        # The raw text: slixmpp 1.8's parser of the utc field fails on
        # fractional seconds ("…:50.739Z"), which XEP-0082 allows.
        utc = iq.xml.find("{urn:xmpp:time}time/{urn:xmpp:time}utc")
        if utc is None or not utc.text:
            return "FAIL no utc in %s" % iq
        return "OK " + utc.text.strip()
    except (asyncio.TimeoutError, slixmpp.exceptions.IqTimeout):
        return "FAIL timed out after %ss" % args.timeout
    except slixmpp.exceptions.IqError as e:
        return "FAIL %s" % e
    finally:
        c.disconnect()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--timeout", type=float, default=30)
    result = asyncio.run(main(p.parse_args()))
    print(result)
    sys.exit(0 if result.startswith("OK") else 1)
