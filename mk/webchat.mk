# The browser chat at /chat/ (xmppd/webchat): Converse.js and @noble/hashes
# from npm, pinned in webchat/package-lock.json. `npm ci` installs them into
# .cache/webchat (never committed); the files the page needs are copied
# into xmppd/webchat/dist, which is git-ignored except for its README (so
# that `go build ./...` and `go vet ./...` work on a fresh clone: the
# embed then holds only the README and /chat/ says the chat was not built
# in). Text files are also stored gzipped (served when the browser accepts
# it: converse.min.js is 1.3 MB, about 0.35 MB gzipped, for a Pi on Wi-Fi).
#
#   make webchat-assets   npm ci + copy (run, image and test call it)

WEBCHAT_NODE := $(CURDIR)/.cache/webchat
WEBCHAT_DIST := $(CURDIR)/xmppd/webchat/dist
WEBCHAT_CONVERSE := $(WEBCHAT_NODE)/node_modules/converse.js/dist
WEBCHAT_NOBLE := $(WEBCHAT_NODE)/node_modules/@noble/hashes
# What Converse loads at run time besides itself: emoji.json (the picker),
# fonts and sounds; libomemo + its wasm for OMEMO over HTTPS. Not the
# locales (7.5 MB of chunks; the page is English like the setup pages).
WEBCHAT_CONVERSE_FILES := converse.min.js converse.min.css emoji.json libomemo.esm.min.js curve25519_compiled.wasm webfonts sounds
# The ES modules the plain-HTTP WebCrypto shim imports (browsers load them
# as they are: no bundler).
WEBCHAT_NOBLE_FILES := utils.js _md.js _u64.js sha2.js legacy.js hmac.js pbkdf2.js LICENSE

.PHONY: webchat-assets
webchat-assets: $(WEBCHAT_DIST)/converse.min.js

$(WEBCHAT_DIST)/converse.min.js: webchat/package.json webchat/package-lock.json mk/webchat.mk
	@mkdir -p $(WEBCHAT_NODE)
	cp webchat/package.json webchat/package-lock.json $(WEBCHAT_NODE)/
	cd $(WEBCHAT_NODE) && npm ci --no-audit --no-fund --loglevel=error
	find $(WEBCHAT_DIST) -mindepth 1 ! -name README.md -delete
	mkdir -p $(WEBCHAT_DIST)/noble
	cd $(WEBCHAT_CONVERSE) && cp -r $(WEBCHAT_CONVERSE_FILES) $(WEBCHAT_DIST)/
	cp $(WEBCHAT_NODE)/node_modules/converse.js/LICENSE $(WEBCHAT_DIST)/LICENSE.converse
	cd $(WEBCHAT_NOBLE) && cp $(WEBCHAT_NOBLE_FILES) $(WEBCHAT_DIST)/noble/
	find $(WEBCHAT_DIST) -type f \( -name '*.js' -o -name '*.css' -o -name '*.json' -o -name '*.wasm' \) -exec gzip -9 -k -n {} +
	touch $@

run: webchat-assets
image: webchat-assets
test-deps: webchat-assets
