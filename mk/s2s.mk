# Federation (xmppd/s2s, issue 14): its e2e test runs Debian's prosody as
# prosody.test beside ours as hearth.test on loopback, with python3-slixmpp
# clients on each. lua-unbound is only a Recommends of prosody (test-deps
# installs without them): without it prosody resolves through the system's
# resolver instead of the test's DNS server, so the test refuses to run.
# ejabberd: the e2e test against ejabberd.test (ejabberd_e2e_test.go).
# prosody-modules: mod_onions, prosody's onion federation, for the onion
# interop test (onion_prosody_e2e_test.go).
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),prosody lua-unbound python3-slixmpp ejabberd prosody-modules)
RACE_PKGS += ./xmppd/s2s

.PHONY: e2e-s2s
e2e-s2s: test-deps
	$(GO) test -tags e2e -count=1 -timeout 10m ./xmppd/s2s/
