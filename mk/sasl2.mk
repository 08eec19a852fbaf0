# Logging in from phones (issue 13): SASL2 (XEP-0388), Bind 2 (XEP-0386),
# FAST tokens (XEP-0484) and XEP-0474 downgrade protection in xmppd/c2s.
# The e2e test runs npm @xmpp/client 0.14.0 (pinned in setup-ui/e2e, npm ci
# by web-deps into .cache/web-e2e; node itself is the machine's, not an
# apt package) against Debian's slixmpp on SASL1; TestLoginRoundTrips
# prints the round trips and times of each login.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),python3-slixmpp)

.PHONY: test-sasl2
test-sasl2: web-deps
	$(GO) test -race -count=1 ./xmppd/c2s/ ./xmppd/sasl/ ./xmppd/store/
	$(GO) test -count=1 -run TestLoginRoundTrips -v ./xmppd/c2s/
	$(GO) test -tags e2e -count=1 -timeout 5m -run TestNodeSASL2FASTWithSlixmpp ./xmppd/c2s/
