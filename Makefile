# Hearth — top-level make targets. Each part of the appliance may add its own
# targets and test packages in a fragment under mk/ (mk/netconf.mk, mk/image.mk,
# …) so that parts do not edit each other's recipes.
SHELL := bash
GO ?= go
STATE ?= $(CURDIR)/var
export GOWORK := off

# Debian packages the tests use as real peers. Fragments append to this.
APT_TEST_PKGS := python3-slixmpp go-sendxmpp profanity tmux prosody ejabberd
# npm packages for browser and WebSocket tests, installed into .cache/node.
NPM_TEST_PKGS :=

# The concurrent core runs its tests a second time under the race detector.
RACE_PKGS := ./xmppd/stream ./xmppd/session ./xmppd/router ./xmppd/server ./xmppd/c2s ./xmppd/idle ./xmppd/mod/smacks ./xmppd/store

.PHONY: all build run test test-deps test-unit fuzz bench vet
all: build

-include mk/*.mk

build:
	$(GO) build ./...

# make run: the whole appliance on this machine, state in ./var, no root.
run:
	@mkdir -p .cache/bin
	$(GO) build -o .cache/bin/ ./cmd/xmppd ./cmd/netconf
	@# netconf in laptop mode beside xmppd; both stop with Ctrl-C.
	@# UPNP=1 lets it ask your router to open the chat ports.
	.cache/bin/netconf -state $(STATE) -local $(if $(UPNP),-upnp) & nc=$$!; \
	trap 'kill $$nc 2>/dev/null; wait $$nc' EXIT INT TERM; \
	.cache/bin/xmppd -state $(STATE) -dev

# make test: installs what the tests need, then runs every suite, the slow
# end-to-end ones (build tag e2e) included. HEARTH_CHECK_SERIALIZED makes
# xmppd compare every stanza it delivers from a hook's serialization with
# a fresh one (xmppd/server/serialized.go), in the tests' servers and the
# xmppd processes they start.
test: test-deps
	$(GO) vet ./...
	HEARTH_CHECK_SERIALIZED=1 $(GO) test -tags e2e -count=1 -timeout 45m ./...
	HEARTH_CHECK_SERIALIZED=1 $(GO) test -race -count=1 $(RACE_PKGS)
	$(MAKE) fuzz FUZZTIME=20s

# The quick loop while developing: unit tests only.
test-unit:
	HEARTH_CHECK_SERIALIZED=1 $(GO) test -count=1 ./...

FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParser$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./xmppd/stream

# Install the real peers the tests talk to, once. Services that Debian would
# start on install (prosody, ejabberd, …) are kept from starting: the tests
# start their own copies on loopback ports.
test-deps:
	@missing=$$(for p in $(APT_TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing test peers: $$missing"; \
	  rcd=; if [ ! -e /usr/sbin/policy-rc.d ]; then rcd=1; printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; $$SUDO chmod +x /usr/sbin/policy-rc.d; fi; \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; st=$$?; \
	  [ -z "$$rcd" ] || $$SUDO rm -f /usr/sbin/policy-rc.d; \
	  exit $$st; \
	fi
	@if [ -n "$(strip $(NPM_TEST_PKGS))" ]; then \
	  mkdir -p .cache/node && cd .cache/node && \
	  { [ -f package.json ] || echo '{"private":true}' > package.json; } && \
	  for p in $(NPM_TEST_PKGS); do [ -d "node_modules/$${p%@*}" ] || npm install --no-audit --no-fund -s $(NPM_TEST_PKGS) || exit 1; break; done; \
	fi
