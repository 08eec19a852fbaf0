# netconf/upnp: router port mappings, tested against Debian's miniupnpd
# (the router, with its nftables backend) in network namespaces the tests
# create; miniupnpc's `upnpc -l` checks what the router holds. iproute2
# (`ip netns`, veth) builds those namespaces (netconf/internal/netns).
#
#   make test-upnp   the upnp and netns packages' tests (unit + e2e; root)
#
# Debian's miniupnpd asks debconf whether to start its daemon; the default
# answer is "no" and `make test-deps` also installs with policy-rc.d
# denying starts, so no system miniupnpd ever runs. The tests run their
# own inside their namespaces.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),miniupnpd miniupnpc nftables iproute2)

.PHONY: test-upnp
test-upnp: test-deps
	$(GO) test -tags e2e -count=1 -timeout 5m ./netconf/upnp/ ./netconf/internal/netns/

# Say "no" to starting the system daemon explicitly (it is also debconf's
# default), before test-deps installs the package.
.PHONY: upnp-preseed
test-deps: upnp-preseed
upnp-preseed:
	@if ! dpkg -s miniupnpd >/dev/null 2>&1 && command -v debconf-set-selections >/dev/null; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo 'miniupnpd miniupnpd/start_daemon boolean false' | $$SUDO debconf-set-selections; \
	fi
