# Issue 15's closing figures (bench/README.md, "Figures: your data"):
# `xmppd export`/`import` of a 100,000-message account (TestCLI100k, which
# reads time and peak RSS from GNU time and bounds the RSS; it is part of
# `make test`), and two benchmarks that generate their data and are not:
# the whole-box backup and restore of 50 members with 1 GiB of uploads
# (about 3 GiB of temporary disk) and the database compaction after
# archive retention shortened from 120 to 30 days (50 members).
APT_TEST_PKGS += $(filter-out $(APT_TEST_PKGS),time)

.PHONY: figures-data
figures-data: test-deps
	uptime
	$(GO) test -tags e2e -count=3 -v -run 'TestCLI100k$$' ./xmppd/portable/
	$(GO) test -run '^$$' -bench BenchmarkBackup50Members1GB -benchtime 1x -count 3 -timeout 30m ./appliance/backup/
	$(GO) test -run '^$$' -bench BenchmarkCompactAfterRetention -benchtime 1x -count 3 -timeout 30m ./xmppd/mod/mam/
	uptime
