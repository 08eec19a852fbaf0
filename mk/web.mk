# The web server (xmppd/web) and the setup pages (setup-ui/).
# Real peers: Debian's chromium (headless, driven by npm playwright-core)
# and axe-core for accessibility; Debian's python3-slixmpp logs in as the
# admin the wizard made.
#
#   make web-deps   chromium from apt; the npm packages pinned in
#                   setup-ui/e2e/package-lock.json, `npm ci` into
#                   .cache/web-e2e (never committed)
#   make test-web   the pages' tests, the browser suite included
#
# fonts-dejavu-core: chromium without --no-install-recommends fonts draws
# boxes for text, which makes screenshots useless.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),chromium fonts-dejavu-core python3-slixmpp)

WEB_E2E_NODE := $(CURDIR)/.cache/web-e2e

.PHONY: web-deps test-web
web-deps: $(WEB_E2E_NODE)/node_modules/.package-lock.json

$(WEB_E2E_NODE)/node_modules/.package-lock.json: setup-ui/e2e/package.json setup-ui/e2e/package-lock.json
	@mkdir -p $(WEB_E2E_NODE)
	cp setup-ui/e2e/package.json setup-ui/e2e/package-lock.json $(WEB_E2E_NODE)/
	cd $(WEB_E2E_NODE) && npm ci --no-audit --no-fund --loglevel=error

# The browser suite runs in `make test` too (tag e2e): its npm packages
# come with the other test peers.
test-deps: web-deps

test-web: test-deps
	$(GO) test -count=1 ./xmppd/web/ ./setup-ui/...
	$(GO) test -tags e2e -count=1 -timeout 10m ./setup-ui/e2e/
