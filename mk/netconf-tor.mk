# netconf/onion: the Tor onion service, tested against Debian's tor.
#
#   make test-onion      the onion package's tests (unit + e2e, real tor
#                        with networking disabled: no traffic leaves the box)
#   make tor-bundle      tor + libraries + loader for the image, in
#                        out/tor_<arch>.tar (see image/tor/collect.sh); for
#                        config.json: "ExtraFilePaths": {"/usr/lib/tor": "out/tor"}

APT_TEST_PKGS += tor

TOR_BUNDLE_ARCHES ?= arm64 amd64

.PHONY: test-onion tor-bundle tor-quiet

# Debian's tor package enables a system tor service, which would connect to
# the Tor network. `make test-deps` keeps it from starting on install
# (policy-rc.d); this makes sure no system tor runs during the tests, even
# on a machine where it was installed some other way or started since.
# The tests start their own tor, offline.
tor-quiet: test-deps
	@SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	if [ -d /run/systemd/system ] && systemctl is-enabled --quiet tor.service 2>/dev/null; then \
	  echo "disabling the system tor service (tests must not reach the Tor network)"; \
	  $$SUDO systemctl disable --now tor.service 'tor@default.service' >/dev/null 2>&1 || true; \
	fi; \
	if pgrep -u debian-tor -x tor >/dev/null 2>&1; then \
	  echo "stopping the system tor (tests must not reach the Tor network)"; \
	  $$SUDO invoke-rc.d tor stop >/dev/null 2>&1 || true; \
	  ! pgrep -u debian-tor -x tor >/dev/null 2>&1 || echo "WARNING: a system tor is still running; stop it (it is not started by these tests)"; \
	fi

test: tor-quiet

test-onion: tor-quiet
	$(GO) test -tags e2e -count=1 -timeout 5m ./netconf/onion/

tor-bundle:
	@mkdir -p out
	for a in $(TOR_BUNDLE_ARCHES); do bash image/tor/collect.sh -a $$a -t out/tor || exit 1; done
