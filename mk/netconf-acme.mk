# netconf/acme and netconf/dnsrec: certificates, DNS records, dynamic DNS.
# Real peers: Debian's pebble (a test ACME CA) and Knot DNS (knotd, an
# authoritative server taking RFC 2136 updates with a TSIG key), both
# started by the tests themselves on loopback ports.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),pebble knot)

.PHONY: test-acme
test-acme: test-deps
	$(GO) test -tags e2e -count=1 -timeout 10m ./netconf/acme/... ./netconf/dnsrec/...
