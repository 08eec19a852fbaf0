# XMPP over WebSocket (xmppd/ws): its e2e test runs npm @xmpp/client (pinned
# in setup-ui/e2e's package.json and lock, installed by web-deps into
# .cache/web-e2e) against Debian's slixmpp over TCP.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),nodejs python3-slixmpp)

.PHONY: test-ws
test-ws: web-deps
	$(GO) test -race -count=1 ./xmppd/ws/
	$(GO) test -tags e2e -count=1 -timeout 5m ./xmppd/ws/
