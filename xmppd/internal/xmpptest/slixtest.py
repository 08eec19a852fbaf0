"""What the slixmpp test scripts share (each */testdata/*.py wrote it out
again before): a client that logs in without channel binding, waits for
its session and for stanzas by predicate, and a main wrapper that prints
OK, or FAIL and the tail of slixmpp's log.

The scripts run with Debian's /usr/bin/python3 (python3-slixmpp) from
several Go tests in several directories, so each finds this module
relative to its own file, not through the runner:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "../../../internal/xmpptest"))
    import slixtest
"""

import argparse
import asyncio
import collections
import logging
import sys

import slixmpp

TIMEOUT = 10
LOG = collections.deque(maxlen=200)


class Fail(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Fail(what)


def no_channel_binding(xmpp):
    """Logs in without channel binding, as many clients do: the servers
    under test offer SCRAM-*-PLUS over TLS 1.3, and slixmpp 1.8 knows only
    tls-unique, which TLS 1.3 does not have, so its -PLUS login fails."""
    fm = xmpp["feature_mechanisms"]
    orig = fm.sasl_callback

    def creds(required, optional):
        r = orig(required, optional)
        if "channel_binding" in r:
            r["channel_binding"] = None
        return r
    fm.sasl_callback = creds


class Client(slixmpp.ClientXMPP):
    """A slixmpp client for a test scenario. start() logs in; queue() and
    want() wait for what arrives, each wait bounded by self.timeout."""

    def __init__(self, jid, password, ca, plugins=(), mech="SCRAM-SHA-256", timeout=TIMEOUT, addr=None):
        super().__init__(jid, password, sasl_mech=mech)
        self.ca_certs = ca
        self.timeout = timeout
        self.addr = addr  # (host, port) for STARTTLS; start(port) goes direct TLS
        for p in plugins:
            self.register_plugin(p)
        no_channel_binding(self)

    def queue(self, *events):
        """A queue each of events puts its argument on, in arrival order."""
        q = asyncio.Queue()
        for e in events:
            self.add_event_handler(e, q.put_nowait)
        return q

    async def start(self, port=None):
        """Logs in, direct TLS to 127.0.0.1:port, or STARTTLS to self.addr
        (the certificate checked against ca either way); Fail unless the
        session starts within self.timeout."""
        done = asyncio.get_event_loop().create_future()

        def settle(exc=None):
            if not done.done():
                done.set_exception(exc) if exc else done.set_result(True)
        handlers = {
            "session_start": lambda _: settle(),
            "failed_all_auth": lambda _: settle(Fail("%s: login failed" % self.boundjid)),
            "connection_failed": lambda e: settle(Fail("%s: connection failed: %s" % (self.boundjid, e))),
            "ssl_invalid_chain": lambda e: settle(Fail("%s: certificate: %s" % (self.boundjid, e))),
        }
        for ev, h in handlers.items():
            self.add_event_handler(ev, h)
        try:
            if port is not None:
                self.connect(("127.0.0.1", port), use_ssl=True, force_starttls=False, disable_starttls=True)
            else:
                self.connect(self.addr, force_starttls=True)
            try:
                await asyncio.wait_for(done, self.timeout)
            except asyncio.TimeoutError:
                raise Fail("%s: no session within %ss" % (self.boundjid, self.timeout))
        finally:
            for ev, h in handlers.items():
                self.del_event_handler(ev, h)

    async def want(self, queue, what, pred=lambda _: True, errors_fail=False, timeout=None):
        """The first item on queue that pred accepts (others are dropped);
        Fail naming what if none comes within timeout (self.timeout). With
        errors_fail, an error stanza on the queue fails at once."""
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_event_loop()
        end = loop.time() + timeout
        while True:
            left = end - loop.time()
            if left <= 0:
                raise Fail("%s: no %s within %ss" % (self.boundjid, what, timeout))
            try:
                st = await asyncio.wait_for(queue.get(), left)
            except asyncio.TimeoutError:
                continue
            if errors_fail and st["type"] == "error":
                raise Fail("%s: error while waiting for %s: %s" % (self.boundjid, what, st))
            if pred(st):
                return st


def parser():
    """The arguments every Go runner passes (xmpptest.Slixmpp): --port of
    the direct-TLS listener, --domain, --ca; a script adds its own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--ca", required=True)
    return ap


class _Keep(logging.Handler):
    def emit(self, record):
        try:
            LOG.append(self.format(record))
        except Exception:
            pass


def capture_log(fmt="%(name)s %(message)s"):
    """Keeps the last of slixmpp's debug log (the XML) in LOG, to print
    when the scenario fails."""
    h = _Keep()
    h.setFormatter(logging.Formatter(fmt))
    logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.DEBUG)


def fail(e, lines=80):
    """Prints FAIL with e and the last lines of the log, exits 1."""
    print("FAIL: %s: %s" % (type(e).__name__, e))
    print("\n".join(list(LOG)[-lines:]))
    sys.exit(1)


def run(scenario, args, timeout=60, lines=80):
    """Runs scenario(args) on a new event loop within timeout seconds:
    prints OK (and what scenario returned, if anything), or FAIL and the
    last lines of the log and exits 1."""
    capture_log()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(asyncio.wait_for(scenario(args), timeout))
    except Exception as e:
        fail(e, lines)
    print("OK" if result is None else "OK %s" % result)
