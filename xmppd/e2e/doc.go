// Package e2e drives xmppd with real XMPP clients nobody here wrote
// (slixmpp, go-sendxmpp, profanity) and with raw sockets for the limit and
// restricted-XML cases. The tests carry the build tag e2e:
//
//	go test -tags e2e -count=1 ./xmppd/e2e/      (or: make e2e)
//
// TestMain builds cmd/xmppd once; every test starts its own server on free
// loopback ports with its own state directory and accounts, so tests run in
// parallel and never touch a real profile or the network.
//
// The files:
//
//	server_e2e_test.go      starting, killing and restarting a server; accounts
//	client_e2e_test.go      a small raw client (TLS, SCRAM, bind) for exact bytes
//	slixmpp_e2e_test.go     runs testdata/scenarios.py (Debian's python3-slixmpp)
//	sendxmpp_e2e_test.go    Debian's go-sendxmpp sends, slixmpp receives
//	profanity_e2e_test.go   profanity through tmux sends, slixmpp receives
//	limits_e2e_test.go      stream errors for restricted XML and limits, auth
//	                        timeout, SASL back-off, STARTTLS whitespace
//	durability_e2e_test.go  SIGKILL while sending; clean SIGTERM shutdown
//	auth_e2e_test.go        slixmpp's tls-unique fallback, the stanza time
//	                        bound after auth, a crowd on the onion listener
//	smacks_e2e_test.go      a 3,000-message burst to a stream-management
//	                        client that acks at once or 100 ms late
//
// Environment knobs, all for checking the tests themselves:
//
//	HEARTH_E2E_SERVER=prosody      run against Debian's prosody instead of xmppd
//	                               (make e2e-prosody); the raw-limit tests expect
//	                               xmppd's exact conditions and fail there
//	HEARTH_E2E_PROSODY_PLAIN=1     let prosody offer PLAIN (go-sendxmpp needs it)
//	HEARTH_E2E_DURABILITY_ACK=ping count acknowledgements by iq ping even when
//	                               the server offers stream management
package e2e
