# Firmware images and signed update feeds (image/, appliance/update).
#
#   make image     out/hearth-pi.img (Raspberry Pi, arm64) and out/hearth-vm.img
#                  (amd64, for qemu), each with its own setup code
#   make image PUBLISH=1
#                  the same images for publication: no setup code in them
#                  (a published image's code would be every box's); each box
#                  makes its own on first start (cmd/firstboot)
#   make vm        boot out/hearth-vm.img in qemu: XMPP on 127.0.0.1:5222
#   make release   a signed update feed in out/feed/ (keys in ./keys/) and
#                  the images for publication (as PUBLISH=1)
#
# gok is pinned in tools/go.mod and built into .cache/bin; the repository
# itself is the gokrazy instance dir (config.json, builddir/), whatever the
# clone's directory is called.

APT_TEST_PKGS += qemu-system-x86 qemu-system-arm mtools fdisk dosfstools e2fsprogs squashfs-tools iproute2

GOK := $(CURDIR)/.cache/bin/gok
RELEASE ?= 1
# The release channel's update feed, baked into images and update roots
# (/etc/hearth/update-feed-url): without it a box never updates unless
# someone edits update.feed_url on /perm. Use the same URL for a channel's
# images and releases (a release without it would drop it from boxes).
FEED_URL ?=
IMAGE_TARGETS ?= pi,vm
VM_MEM ?= 1024
VM_PORT_C2S ?= 5222
VM_PORT_C2S_TLS ?= 5223
VM_PORT_HTTP ?= 8000
PUBLISH ?=

.PHONY: image vm release gok

# Tor for the onion service goes into the image as extra files (config.json:
# netconf's ExtraFilePaths "/usr/lib/tor": "out/tor"; gok picks the tar of
# the target architecture). Debian's tor and its libraries, fetched once by
# image/tor/collect.sh through `make tor-bundle` (mk/netconf-tor.mk).
TOR_TARS := out/tor_arm64.tar out/tor_amd64.tar
$(TOR_TARS) &: image/tor/collect.sh
	$(MAKE) tor-bundle

gok: $(GOK)
$(GOK): tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o $(GOK) github.com/gokrazy/tools/cmd/gok

image: $(GOK) $(TOR_TARS)
	$(GO) run ./image/mkimage -gok $(GOK) -version $(RELEASE) -targets $(IMAGE_TARGETS) $(if $(PUBLISH),-publish) -feed-url '$(FEED_URL)'

# User-mode networking with restrict=on: the guest reaches nothing but the
# forwarded ports, and those listen on loopback only.
vm: $(GOK)
	@[ -f out/hearth-vm.img ] || $(MAKE) image IMAGE_TARGETS=vm
	qemu-system-x86_64 -m $(VM_MEM) -smp 2 -nographic \
	  -drive file=out/hearth-vm.img,format=raw,if=virtio \
	  -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$(VM_PORT_C2S)-:5222,hostfwd=tcp:127.0.0.1:$(VM_PORT_C2S_TLS)-:5223,hostfwd=tcp:127.0.0.1:$(VM_PORT_HTTP)-:80 \
	  -device virtio-net-pci,netdev=net0

# A signed update feed for release $(RELEASE) in out/feed: serve it with any
# static web server (or copy it to a USB stick) and set update.feed_url.
# Keys are generated in ./keys on first use; keep them, or boxes flashed with
# the old keys/root.json will refuse your releases.
release: $(GOK) $(TOR_TARS)
	$(GO) run ./image/mkimage -gok $(GOK) -version $(RELEASE) -targets $(IMAGE_TARGETS) -feed out/feed -feed-url '$(FEED_URL)'
	$(GO) run ./image/mkimage -gok $(GOK) -version $(RELEASE) -targets $(IMAGE_TARGETS) -publish -feed-url '$(FEED_URL)'

# A feed's timestamp expires after 7 days (so boxes can tell a frozen feed
# from a quiet one): whoever serves out/feed runs this daily, e.g. from cron.
.PHONY: refresh-feed
refresh-feed:
	$(GO) run ./image/mkimage -refresh-feed out/feed

# The qemu suites (boot, login, updates; image/*_e2e_test.go, tag e2e) run in
# `make test`: gok must exist before them (without it they skip), so it is a
# prerequisite of test-deps. Run them alone with `make test-image`.
test-deps: $(GOK) $(TOR_TARS)

.PHONY: test-image
test-image: test-deps $(GOK)
	$(GO) test -tags e2e -count=1 -timeout 20m -v ./image/
