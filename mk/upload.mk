# HTTP upload (xmppd/mod/upload): its e2e test drives slixmpp's xep_0363
# plugin, which PUTs the file with aiohttp.
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),python3-slixmpp python3-aiohttp)
