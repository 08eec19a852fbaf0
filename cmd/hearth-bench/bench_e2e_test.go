//go:build e2e

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/internal/testenv"
)

// TestQuickBenchHearth runs the harness in its smoke mode against a
// freshly built xmppd and checks that it produced a complete table. It
// asserts that the harness works, not how fast the server is.
func TestQuickBenchHearth(t *testing.T) {
	testenv.NeedCommand(t, "taskset", "apt package util-linux; make test-deps installs it")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	for _, b := range [][2]string{{"xmppd", "../xmppd"}, {"hearth-bench", "."}} {
		out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, b[0]), b[1]).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", b[0], err, out)
		}
	}
	md := filepath.Join(dir, "bench.md")
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "hearth-bench"), "-quick", "-servers", "hearth",
		"-xmppd", filepath.Join(dir, "xmppd"), "-bench-dir", "../../bench", "-out", md, "-work", filepath.Join(dir, "work"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hearth-bench: %v\n%s", err, out)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	report := string(b)
	if !strings.Contains(string(out), report) {
		t.Error("the report on stdout differs from the file")
	}
	wantRows := []string{
		"cold start", "RSS at rest", "RSS with 200 idle sessions", "RSS per idle session (N=200)",
		"messages/s at saturation", "messages per server CPU-second", "logins/s", "CPU over", "wake-ups/s",
		"server CPU per message at 50 msg/s", "server CPU per message at 500 msg/s", "server CPU per message at 2000 msg/s",
		"wake-ups per message at 500 msg/s", "latency p50 at 500 msg/s", "latency p99 at 2000 msg/s",
		"failures at 50 msg/s", "failures at 500 msg/s", "failures at 2000 msg/s",
		"offline path: messages/s", "offline path: fsyncs/s", "offline path: failures",
		"RSS per idle WebSocket session (N=200)", "messages/s at saturation over WebSocket",
		// the upload phase (issue 11) and the group chat phase (issue 12)
		"upload 4 MiB (XEP-0363): PUT throughput", "upload: GET throughput", "upload: server RSS growth during the PUT",
		"upload: server peak RSS during the PUT", "upload: file back byte-identical",
		"group chat, 10 occupants: messages/s at saturation", "group chat: deliveries/s at saturation",
		"group chat: deliveries per server CPU-second", "group chat: syncs per message at saturation",
		"group chat: latency p50 to the 10th receipt at 10 msg/s", "group chat: latency p99 to the 10th receipt at 10 msg/s",
		"group chat: failures at 10 msg/s", "group chat: RssAnon per idle occupant beyond its session's (100 in rooms of 25)",
		"group chat: RssAnon per idle occupant over the second half's joins", "group chat: RssAnon per idle session, for scale (100)",
		"group chat: join a room with 100 archived messages (history 20)", "group chat: then the last 50 from the room's archive",
		"PEP: publish to the 10th contact's notification, p50", "PEP: publish to the 10th contact's notification, p99",
		"PEP: server CPU per notification",
		// issue 13: the archive's cost at 1000 msg/s, RssAnon beside
		// VmRSS, and paging an account archive
		"server CPU per message at 1000 msg/s", "failures at 1000 msg/s",
		"fsyncs/s at 1000 msg/s", "disk written per message at 1000 msg/s",
		"RssAnon at rest", "RssAnon with 200 idle sessions",
		"RSS after the messaging phases (VmRSS)", "RssAnon after the messaging phases",
		"account archive: messages archived (fill of 500", "account archive: fill rate",
		"account archive: disk written per message during the fill",
		"account archive: newest 50, median", "account archive: newest 50 with one contact, median",
		"account archive: oldest 50, median", "account archive: RssAnon after the fill and pages",
	}
	num := regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	for _, w := range wantRows {
		var row string
		for _, l := range strings.Split(report, "\n") {
			if strings.HasPrefix(l, "| "+w) {
				row = l
				break
			}
		}
		if row == "" {
			t.Errorf("no row %q in\n%s", w, report)
			continue
		}
		cells := strings.Split(strings.Trim(row, "| "), "|")
		if len(cells) != 3 {
			t.Errorf("row %q has %d cells, want metric, unit, hearth", w, len(cells))
			continue
		}
		if v := strings.TrimSpace(cells[2]); !num.MatchString(v) {
			t.Errorf("row %q: hearth value %q is not a number", w, v)
		}
	}
	if strings.Contains(report, "**failed**") {
		t.Errorf("report says a server failed:\n%s", report)
	}
	// Nothing the server accepted may be lost, even on a busy machine:
	// the failure rows (lost, more than a second late, or bounced) are 0.
	for _, l := range strings.Split(report, "\n") {
		if strings.HasPrefix(l, "| failures at ") || strings.HasPrefix(l, "| offline path: failures") || strings.HasPrefix(l, "| group chat: failures") {
			if cells := strings.Split(strings.Trim(l, "| "), "|"); len(cells) == 3 && strings.TrimSpace(cells[2]) != "0" {
				t.Errorf("hearth failed messages: %s", l)
			}
		}
	}
	if !strings.Contains(report, "## Fixed-rate runs") || !strings.Contains(report, "| hearth | 500 |") {
		t.Errorf("no fixed-rate table with a hearth row at 500 msg/s:\n%s", report)
	}
	if strings.Contains(report, "fsyncs not counted") {
		t.Errorf("the offline run did not count fsyncs (is perf installed?):\n%s", report)
	}
	// Every message of the fill reached the archive and every page got
	// its 50; perf counted the fixed-rate runs' syncs.
	if !regexp.MustCompile(`(?m)^\| account archive: messages archived \(fill of 500, at most 10s\) \| msgs \| 500 \|$`).MatchString(report) ||
		strings.Contains(report, "account archive: pages got") || strings.Contains(report, "account archive: the fill stopped") {
		t.Errorf("account archive phase incomplete:\n%s", report)
	}
	if strings.Contains(report, "fsyncs n/a") {
		t.Errorf("the fixed-rate runs did not count fsyncs (is perf installed?):\n%s", report)
	}
	if !regexp.MustCompile(`(?m)^\| PEP: items \(of 5\) that reached every contact \| items \| 5 \|$`).MatchString(report) {
		t.Errorf("not every PEP item reached every contact:\n%s", report)
	}
	if !regexp.MustCompile(`(?m)^\| upload: file back byte-identical \| 1 = yes \| 1 \|$`).MatchString(report) {
		t.Errorf("the uploaded file did not come back byte-identical:\n%s", report)
	}
	// The join got its 20 messages of history and the archive its 50
	// (main.go notes it otherwise); the room was configured like the
	// others' (the phase fails otherwise).
	if strings.Contains(report, "group chat: the join got") || strings.Contains(report, "syncs not counted") {
		t.Errorf("group chat phase incomplete:\n%s", report)
	}
	if !strings.Contains(report, "| hearth | 10 msg/s |") || !strings.Contains(report, "| hearth | saturation (10 in flight) |") {
		t.Errorf("no group chat runs table with hearth's rows:\n%s", report)
	}
	if strings.Contains(report, "logins failed") || strings.Contains(report, "error bounces") || strings.Contains(report, "no answer to a ping") {
		t.Errorf("report notes lost messages or failed logins:\n%s", report)
	}
}
