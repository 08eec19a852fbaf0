# make bench: Hearth's xmppd against Debian's prosody and ejabberd on
# loopback (cmd/hearth-bench, configs in bench/). Writes out/bench.md.
# BENCH_QUICK=1 make bench is a short smoke run.
# linux-perf: the offline run counts the servers' fsync-family system calls
# with perf's syscall tracepoints (strace would stop the server at each).
BENCH_APT_PKGS := prosody ejabberd lua-unbound util-linux linux-perf

# The e2e smoke test of the harness runs against hearth only; the client's
# real-peer test uses prosody (already in APT_TEST_PKGS).
APT_TEST_PKGS += util-linux linux-perf

.PHONY: bench bench-deps
bench: bench-deps
	BENCH_QUICK=$(BENCH_QUICK) bench/run.sh

# Same pattern as test-deps: install what is missing, keep Debian from
# starting the packaged prosody/ejabberd services (we start our own).
bench-deps:
	@missing=$$(for p in $(BENCH_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing bench peers: $$missing"; \
	  rcd=; if [ ! -e /usr/sbin/policy-rc.d ]; then rcd=1; printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; $$SUDO chmod +x /usr/sbin/policy-rc.d; fi; \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; st=$$?; \
	  [ -z "$$rcd" ] || $$SUDO rm -f /usr/sbin/policy-rc.d; \
	  exit $$st; \
	fi
