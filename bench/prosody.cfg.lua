-- Prosody for `make bench`: loopback only, throwaway data dir, settings
-- comparable with xmppd -no-shaping: TLS required, SCRAM-SHA-256 with
-- hashed storage, offline storage on, rate limits and registration
-- throttles lifted. hearth-bench fills in the template fields (Dir, Port, Domain).
run_as_root = true
daemonize = false
pidfile = "{{.Dir}}/prosody.pid"
data_path = "{{.Dir}}/data"
certificates = "{{.Dir}}"
log = { warn = "{{.Dir}}/prosody.log" }
network_backend = "epoll"

interfaces = { "127.0.0.1" }
c2s_ports = { {{.Port}} }
c2s_direct_tls_ports = { }
s2s_ports = { }
component_ports = { }
-- XMPP over WebSocket (mod_websocket) on loopback plain HTTP, as xmppd's
-- -web: SCRAM over it is allowed (consider_websocket_secure).
http_ports = { {{.HTTPPort}} }
http_interfaces = { "127.0.0.1" }
https_ports = { }
http_default_host = "{{.Domain}}"
consider_websocket_secure = true

c2s_require_encryption = true
authentication = "internal_hashed"
password_hash = "SHA-256"
-- 4096 PBKDF2 rounds, as xmppd and ejabberd use (Prosody's default is 10000).
default_iteration_count = 4096
storage = "internal"

-- Only what xmppd registers (xmppd/mods*.go), module for module; see
-- README.md here for the list on each side. presence, message, iq,
-- offline and c2s are autoloaded by Prosody. No privacy lists: Hearth
-- has none, and a module loaded on one side only is work (hooks on every
-- stanza, memory) the other side does not do.
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "version"; "time";
	"vcard"; "private"; "lastactivity"; "server_contact_info"; "smacks";
	"invites"; "invites_register";
	"adhoc"; "pep"; "external_services"; -- xmppd/mod/adhoc, pep, extdisco
	"websocket"; -- XMPP over WebSocket, next to xmppd/ws
	-- issue 13's modules, registered by xmppd since 10:18 UTC on 7 Dec
	-- (xmppd/mods_devices.go, mods_mam.go, mods_phone.go). No push:
	-- mod_cloud_notify is a community module, not in Debian's 0.12.
	"carbons"; "blocklist"; "mam"; "csi"; "csi_simple";
	"register"; -- in-band registration creates the bench accounts (xmppd: useradd-bulk)
}
modules_disabled = { "s2s"; }

-- Every message to an account archived, kept 30 days (xmppd/mod/mam's
-- default retention; Prosody's own default policy archives everything).
default_archive_policy = true
archive_expires_after = "30d"
-- The internal store caps an archive at 10,000 items and mod_mam then
-- truncates it to 9,900 (a run of hearth-bench's archive phase counted
-- 9,901 of 10,074 delivered): issue 13 pages a 100,000-message archive,
-- so the cap is lifted above that.
storage_archive_item_limit = 200000

-- Lift shapers and throttles.
limits = { c2s = { rate = "1000mb/s"; }; }
allow_registration = true
-- mod_invites_register would otherwise refuse registration without an
-- invite, and the bench makes its accounts in band.
registration_invite_only = false
min_seconds_between_registrations = 0
registration_throttle_max = 1000000
registration_throttle_period = 1
c2s_timeout = 600

VirtualHost "{{.Domain}}"
	ssl = { certificate = "{{.Dir}}/cert.pem"; key = "{{.Dir}}/key.pem"; }

-- xmppd/mod/muc (groups.<domain>, rooms with an archive) and
-- xmppd/mod/upload (upload.<domain>, XEP-0363).
Component "groups.{{.Domain}}" "muc"
	modules_enabled = { "muc_mam" }
Component "upload.{{.Domain}}" "http_file_share"
	-- xmppd/mod/upload's defaults: 100 MiB a file, 200 MiB a day per
	-- member (Prosody's own are 10 MB and ten files a day). It is served on
	-- the loopback HTTP port above (http_ports), like xmppd's -web.
	http_file_share_size_limit = 100*1024*1024
	http_file_share_daily_quota = 200*1024*1024
