# Message archive (xmppd/mod/mam, issue 13): its e2e test drives Debian's
# slixmpp (xep_0313 over xep_0059, xep_0198, xep_0359) across an xmppd
# restart; the SIGKILL loop for online and hibernating recipients is in
# xmppd/e2e (TestDurabilityOnlineAndHibernating). The archive commits in
# the background for the sender's session (server.Commit, store's commit
# queue), so it runs under the race detector too.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),python3-slixmpp)
RACE_PKGS += ./xmppd/mod/mam

.PHONY: e2e-mam
e2e-mam: test-deps
	$(GO) test -tags e2e -count=1 -timeout 10m ./xmppd/mod/mam/
	$(GO) test -tags e2e -count=1 -timeout 10m -run 'TestDurability' ./xmppd/e2e/
