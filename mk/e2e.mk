# xmppd's real-client end-to-end suite (xmppd/e2e): slixmpp, go-sendxmpp and
# profanity (through tmux) against a freshly built xmppd on loopback ports.
# prosody is only needed for `make e2e-prosody`, which runs the same client
# tests against a server we did not write, to check the tests themselves.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),python3-slixmpp go-sendxmpp profanity tmux prosody)

.PHONY: e2e e2e-prosody
e2e: test-deps
	$(GO) test -tags e2e -count=1 -timeout 10m ./xmppd/e2e/

e2e-prosody: test-deps
	HEARTH_E2E_SERVER=prosody $(GO) test -tags e2e -count=1 -timeout 15m ./xmppd/e2e/
