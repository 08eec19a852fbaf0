# PEP (xmppd/mod/pep): its e2e tests drive slixmpp's pubsub, avatar,
# nickname and bookmark plugins, and exchange OMEMO 2 messages with
# python3-omemo/python3-twomemo (whose XML helpers need python3-xmlschema)
# doing the cryptography (slixmpp-omemo itself is not in Debian).
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),python3-slixmpp python3-omemo python3-twomemo python3-xmlschema)

.PHONY: e2e-pep
e2e-pep:
	go test -tags e2e -count=1 ./xmppd/mod/pep/...
