// Package e2e drives xmppd with real XMPP clients nobody here wrote
// (slixmpp, go-sendxmpp, profanity) and with raw sockets for the limit and
// restricted-XML cases. The tests carry the build tag e2e:
//
//	go test -tags e2e -count=1 ./xmppd/e2e/
//
// TestMain builds cmd/xmppd once; every test starts its own server on free
// loopback ports with its own state directory. Setting HEARTH_E2E_SERVER=prosody
// runs the client tests against Debian's prosody instead, which is how the
// suite itself is checked against a server we did not write.
package e2e
