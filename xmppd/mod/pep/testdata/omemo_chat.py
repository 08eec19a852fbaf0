#!/usr/bin/python3
"""Two slixmpp clients exchange OMEMO-encrypted messages (OMEMO 2,
urn:xmpp:omemo:2) through the server's PEP: Debian's python3-omemo and
python3-twomemo do the cryptography and key management; this script is
the XMPP glue slixmpp-omemo would be (that one is not in Debian, and the
Python registry is out of reach here). Each client's session manager
publishes its device list and bundle with Conversations' options (open;
max_items max for bundles), downloads the other's, and the messages
decrypt on the other side. Run by slixmpp_e2e_test.go; prints "OK" or
"FAIL: ..." like omemo_keys.py.
"""

import asyncio
import os
import sys

import omemo
import twomemo
import twomemo.etree
from slixmpp.exceptions import IqError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../internal/xmpptest"))
from omemo_keys import Client  # noqa: E402
from slixtest import TIMEOUT, check, parser, run  # noqa: E402

NS = twomemo.twomemo.NAMESPACE
DEVICES = NS + ":devices"
BUNDLES = NS + ":bundles"


class MemStorage(omemo.Storage):
    def __init__(self):
        super().__init__()
        self.d = {}

    async def _load(self, key):
        return omemo.Just(self.d[key]) if key in self.d else omemo.Nothing()

    async def _store(self, key, value):
        self.d[key] = value

    async def _delete(self, key):
        self.d.pop(key, None)


def make_manager_class(xmpp):
    class Manager(omemo.SessionManager):
        @staticmethod
        async def _upload_bundle(bundle):
            await xmpp["xep_0060"].publish(None, BUNDLES, id=str(bundle.device_id),
                                           payload=twomemo.etree.serialize_bundle(bundle),
                                           options=xmpp.options(access_model="open", max_items="max"), timeout=TIMEOUT)

        @staticmethod
        async def _download_bundle(namespace, bare_jid, device_id):
            r = await xmpp["xep_0060"].get_items(bare_jid, BUNDLES, item_ids=[str(device_id)], timeout=TIMEOUT)
            el = r.xml.find(".//{%s}bundle" % NS)
            if el is None:
                raise omemo.BundleDownloadFailed("no bundle %d of %s" % (device_id, bare_jid))
            return twomemo.etree.parse_bundle(el, bare_jid, device_id)

        @staticmethod
        async def _delete_bundle(namespace, device_id):
            pass

        @staticmethod
        async def _upload_device_list(namespace, device_list):
            await xmpp["xep_0060"].publish(None, DEVICES, id="current",
                                           payload=twomemo.etree.serialize_device_list(device_list),
                                           options=xmpp.options(access_model="open"), timeout=TIMEOUT)

        @staticmethod
        async def _download_device_list(namespace, bare_jid):
            try:
                r = await xmpp["xep_0060"].get_items(bare_jid, DEVICES, timeout=TIMEOUT)
            except IqError as e:
                if e.iq["error"]["condition"] == "item-not-found":
                    return {}
                raise
            el = r.xml.find(".//{%s}devices" % NS)
            return {} if el is None else twomemo.etree.parse_device_list(el)

        async def _evaluate_custom_trust_level(self, device):
            return omemo.TrustLevel[device.trust_level_name]

        async def _make_trust_decision(self, undecided, identifier):
            # Blind trust for the test: both sides are ours.
            for d in undecided:
                await self.set_trust(d.bare_jid, d.identity_key, "TRUSTED")

        @staticmethod
        async def _send_message(message, bare_jid):
            msg = xmpp.make_message(mto=bare_jid, mtype="chat")
            msg.append(twomemo.etree.serialize_message(message))
            msg.send()

    return Manager


class OMEMOClient(Client):
    def __init__(self, user, args):
        super().__init__(user, args)
        self.encrypted = asyncio.Queue()
        self.add_event_handler("message", self.on_message)

    def on_message(self, msg):
        el = msg.xml.find("{%s}encrypted" % NS)
        if el is not None and msg["body"] != "":
            check("secret" not in str(msg), "plaintext on the wire: %s" % msg)
            self.encrypted.put_nowait((msg["from"].bare, el))

    async def start_omemo(self):
        cls = make_manager_class(self)
        self.sm = await cls.create([twomemo.Twomemo(MemStorage())], MemStorage(), self.boundjid.bare,
                                   None, "UNDECIDED")

    async def send_encrypted(self, to, text):
        # What a +notify event would have told us: fetch the recipient's
        # device list from its PEP node.
        await self.sm.refresh_device_list(NS, to)
        messages, errors = await self.sm.encrypt(frozenset([to]), {NS: text.encode()})
        check(not errors, "encryption errors: %s" % errors)
        for m in messages:
            msg = self.make_message(mto=to, mtype="chat", mbody="[OMEMO encrypted]")
            msg.append(twomemo.etree.serialize_message(m))
            msg.send()

    async def receive(self):
        sender, el = await asyncio.wait_for(self.encrypted.get(), TIMEOUT)
        m = twomemo.etree.parse_message(el, sender)
        plain, device, _ = await self.sm.decrypt(m)
        return sender, plain.decode() if plain is not None else None


async def scenario(args):
    alice, bob = OMEMOClient("alice", args), OMEMOClient("bob", args)
    await alice.start(args.port)
    await bob.start(args.port)
    alice.send_presence()
    bob.send_presence()
    await alice.start_omemo()
    await bob.start_omemo()
    a, b = alice.boundjid.bare, bob.boundjid.bare

    await alice.send_encrypted(b, "hello bob, this is secret")
    sender, text = await bob.receive()
    check(sender == a and text == "hello bob, this is secret", "bob decrypted %r from %s" % (text, sender))
    await bob.send_encrypted(a, "hello alice, secret too")
    sender, text = await alice.receive()
    check(sender == b and text == "hello alice, secret too", "alice decrypted %r from %s" % (text, sender))
    alice.disconnect()
    bob.disconnect()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    run(scenario, parser().parse_args())
