# Calls and files through NAT: the STUN/TURN server (xmppd/turn), XEP-0215
# (xmppd/mod/extdisco), the XEP-0065 proxy (xmppd/mod/socks5, driven by
# slixmpp's xep_0065 plugin). The TURN e2e test drives coturn's own test clients
# (turnutils_stunclient, turnutils_uclient, turnutils_peer) against our
# server. Installing Debian's coturn would start its turnserver on 3478;
# test-deps blocks service starts with policy-rc.d (and our test server
# listens on a free port of its own, so a running coturn could not be
# tested by mistake).
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),coturn python3-slixmpp)

.PHONY: e2e-calls
e2e-calls: test-deps
	$(GO) test -tags e2e -count=1 -timeout 10m -run 'TestCoturn|TestSlixmppBytestreams' ./xmppd/mod/extdisco/ ./xmppd/mod/socks5/
