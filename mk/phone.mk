# Phones that sleep (issue 13): XEP-0352 client state indication
# (xmppd/mod/csi), XEP-0357 push (xmppd/mod/push) and the XEP-0114
# component listener its app server connects to (xmppd/component). The e2e
# tests drive slixmpp's xep_0352, xep_0198 and ComponentXMPP (Debian's
# slixmpp 1.8 has no xep_0357 plugin: the script builds the enable iq).
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),python3-slixmpp)

.PHONY: e2e-phone
e2e-phone: test-deps
	$(GO) test -tags e2e -count=1 -timeout 10m ./xmppd/mod/csi/ ./xmppd/mod/push/ ./xmppd/component/
