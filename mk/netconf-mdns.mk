# netconf/mdns: hearth.local and the setup pages' `_http._tcp` service.
# Real peers: Debian's avahi-daemon (with a private D-Bus bus for
# avahi-browse/avahi-resolve) and libnss-mdns (getent hosts), started by
# the tests themselves in network namespaces named hnc-md-*.
#
#   make test-mdns      the mdns package's tests (unit + e2e, root)
#
# Installing libnss-mdns adds "mdns4_minimal [NOTFOUND=return]" to the
# hosts line of /etc/nsswitch.conf. Only names under .local are affected;
# with no system avahi running (policy-rc.d keeps it from starting) such
# lookups fall through to DNS as before, and Go's own resolver skips the
# entry for every other name. avahi-daemon needs a D-Bus system bus
# implementation (dbus-daemon), which --no-install-recommends would not
# otherwise guarantee.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),avahi-daemon avahi-utils libnss-mdns dbus-daemon iproute2)

.PHONY: test-mdns
test-mdns: test-deps
	$(GO) test -tags e2e -count=1 -timeout 5m ./netconf/mdns/
