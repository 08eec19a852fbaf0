package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// metric is one row of the table.
type metric struct {
	label string
	value func(r *result) (float64, bool)
	unit  string
	prec  int
	// noRatio: a hearth/other quotient means nothing (failure counts)
	noRatio bool
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func report(o *options, rs []*result) string {
	rows := []metric{
		{label: "cold start to first stream features", value: func(r *result) (float64, bool) { return ms(r.coldStart), r.coldStart > 0 }, unit: "ms"},
		{label: "RSS at rest (accounts created, no sessions)", value: func(r *result) (float64, bool) { return float64(r.rssRest) / 1024, r.rssRest > 0 }, unit: "MiB", prec: 1},
		{label: "RssAnon at rest (VmRSS less mapped files)", value: func(r *result) (float64, bool) { return float64(r.anonRest) / 1024, r.rssRest > 0 }, unit: "MiB", prec: 1},
	}
	ns := []int{o.nSmall}
	if o.nLarge != o.nSmall {
		ns = append(ns, o.nLarge)
	}
	for _, n := range ns {
		rows = append(rows,
			metric{label: fmt.Sprintf("RSS with %d idle sessions", n), value: func(r *result) (float64, bool) { return float64(r.rssN[n]) / 1024, r.rssN[n] > 0 }, unit: "MiB", prec: 1},
			metric{label: fmt.Sprintf("RssAnon with %d idle sessions", n), value: func(r *result) (float64, bool) { return float64(r.anonN[n]) / 1024, r.rssN[n] > 0 }, unit: "MiB", prec: 1},
			metric{label: fmt.Sprintf("RSS per idle session (N=%d)", n), value: func(r *result) (float64, bool) { return r.perSess[n], r.rssN[n] > 0 }, unit: "KiB", prec: 1},
		)
	}
	rows = append(rows,
		metric{label: fmt.Sprintf("time to open %d sessions", o.nSmall), value: func(r *result) (float64, bool) {
			d := r.loginN[o.nSmall]
			return d.Seconds(), d > 0
		}, unit: "s", prec: 2},
		metric{label: fmt.Sprintf("CPU over %v idle, %d sessions", o.idleWindow, o.nSmall), value: func(r *result) (float64, bool) { return r.idleCPU, r.idleSess > 0 }, unit: "CPU-s", prec: 2},
		metric{label: fmt.Sprintf("wake-ups/s over %v idle, %d sessions", o.idleWindow, o.nSmall), value: func(r *result) (float64, bool) { return r.idleWake, r.idleSess > 0 }, unit: "/s", prec: 1},
		metric{label: "messages/s at saturation", value: func(r *result) (float64, bool) {
			return float64(r.sat.delivered) / r.sat.window.Seconds(), r.sat.window > 0
		}, unit: "msg/s"},
		metric{label: fmt.Sprintf("RSS per idle WebSocket session (N=%d)", o.nSmall), value: func(r *result) (float64, bool) { return r.wsPerSess, r.wsN > 0 }, unit: "KiB", prec: 1},
		metric{label: "messages/s at saturation over WebSocket", value: func(r *result) (float64, bool) {
			return float64(r.wsSat.delivered) / r.wsSat.window.Seconds(), r.wsSat.window > 0
		}, unit: "msg/s"},
		metric{label: "server CPU during saturation", value: func(r *result) (float64, bool) {
			return r.sat.serverCPU / r.sat.window.Seconds() * 100, r.sat.window > 0
		}, unit: "% of a core"},
		metric{label: "messages per server CPU-second at saturation", value: func(r *result) (float64, bool) {
			return float64(r.sat.delivered) / r.sat.serverCPU, r.sat.serverCPU > 0
		}, unit: "msg/CPU-s"},
	)
	for _, rate := range o.rates {
		get := func(r *result) (rateResult, bool) { return r.rate(rate) }
		rows = append(rows,
			metric{label: fmt.Sprintf("server CPU per message at %d msg/s", rate), value: func(r *result) (float64, bool) {
				x, ok := get(r)
				return x.usPerMsg(), ok && x.sent > 0
			}, unit: "µs", prec: 1},
			metric{label: fmt.Sprintf("wake-ups per message at %d msg/s", rate), value: func(r *result) (float64, bool) {
				x, ok := get(r)
				return x.wakesPerMsg(), ok && x.sent > 0
			}, unit: "/msg", prec: 2},
			metric{label: fmt.Sprintf("latency p50 at %d msg/s", rate), value: func(r *result) (float64, bool) {
				x, ok := get(r)
				return ms(x.p50), ok && x.delivered > 0
			}, unit: "ms", prec: 2},
			metric{label: fmt.Sprintf("latency p99 at %d msg/s", rate), value: func(r *result) (float64, bool) {
				x, ok := get(r)
				return ms(x.p99), ok && x.delivered > 0
			}, unit: "ms", prec: 2},
			metric{label: fmt.Sprintf("failures at %d msg/s (lost + late + bounced)", rate), value: func(r *result) (float64, bool) {
				x, ok := get(r)
				return float64(x.failures()), ok && x.sent > 0
			}, unit: "msgs", noRatio: true},
			metric{label: fmt.Sprintf("fsyncs/s at %d msg/s", rate), value: func(r *result) (float64, bool) {
				x, ok := get(r)
				v, ok2 := x.syncsPerSec()
				return v, ok && ok2
			}, unit: "/s", prec: 1},
			metric{label: fmt.Sprintf("disk written per message at %d msg/s", rate), value: func(r *result) (float64, bool) {
				x, ok := get(r)
				return x.bytesPerMsg(), ok && x.sent > 0
			}, unit: "bytes/msg"},
		)
	}
	rows = append(rows,
		metric{label: "RSS after the messaging phases (VmRSS)", value: func(r *result) (float64, bool) { return float64(r.rssMsg) / 1024, r.rssMsg > 0 }, unit: "MiB", prec: 1},
		metric{label: "RssAnon after the messaging phases", value: func(r *result) (float64, bool) { return float64(r.anonMsg) / 1024, r.rssMsg > 0 }, unit: "MiB", prec: 1},
	)
	rows = append(rows,
		metric{label: "logins/s (TCP+STARTTLS+SCRAM+bind, 16 parallel)", value: func(r *result) (float64, bool) {
			return float64(r.login.ok) / r.login.window.Seconds(), r.login.window > 0
		}, unit: "login/s"},
	)
	rows = append(rows, uploadRows(o)...)
	rows = append(rows, mucRows(o)...)
	rows = append(rows, pepRows(o)...)
	rows = append(rows, mamRows(o)...)
	rows = append(rows,
		metric{label: "offline path: messages/s to members not logged in", value: func(r *result) (float64, bool) {
			return float64(r.off.stored) / r.off.window.Seconds(), r.off.window > 0
		}, unit: "msg/s"},
		metric{label: "offline path: fsyncs/s", value: func(r *result) (float64, bool) {
			return float64(r.off.fsyncs) / r.off.window.Seconds(), r.off.window > 0 && r.off.fsyncs >= 0
		}, unit: "/s", prec: 1},
		metric{label: "offline path: fsyncs per message", value: func(r *result) (float64, bool) {
			return float64(r.off.fsyncs) / float64(r.off.stored), r.off.stored > 0 && r.off.fsyncs >= 0
		}, unit: "/msg", prec: 3},
		metric{label: "offline path: failures (bounced)", value: func(r *result) (float64, bool) {
			return float64(r.off.bounced), r.off.window > 0
		}, unit: "msgs", noRatio: true},
	)

	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# hearth-bench %s\n\n", time.Now().UTC().Format(time.RFC3339))
	mode := "full"
	if o.quick {
		mode = "quick (BENCH_QUICK=1)"
	}
	cpus, _ := os.ReadFile("/sys/devices/system/cpu/present")
	fmt.Fprintf(&b, "Mode %s on %s (CPUs %s; load generator on %d of them), server pinned to CPU %q, loopback, domain %s, STARTTLS, ECDSA P-256 certificate.\n\n",
		mode, host, strings.TrimSpace(string(cpus)), runtime.NumCPU(), o.serverCPU, o.domain)
	idx := map[string]*result{}
	fmt.Fprintf(&b, "| metric | unit |")
	for _, r := range rs {
		idx[r.name] = r
		fmt.Fprintf(&b, " %s |", r.name)
	}
	h := idx["hearth"]
	var ratios []string
	for _, other := range []string{"prosody", "ejabberd"} {
		if h != nil && idx[other] != nil {
			ratios = append(ratios, other)
			fmt.Fprintf(&b, " hearth/%s |", other)
		}
	}
	b.WriteString("\n|---|---|")
	for range rs {
		b.WriteString("---:|")
	}
	for range ratios {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, m := range rows {
		fmt.Fprintf(&b, "| %s | %s |", m.label, m.unit)
		for _, r := range rs {
			if v, ok := m.value(r); ok {
				fmt.Fprintf(&b, " %.*f |", m.prec, v)
			} else {
				b.WriteString(" – |")
			}
		}
		for _, other := range ratios {
			hv, ok1 := m.value(h)
			ov, ok2 := m.value(idx[other])
			if ok1 && ok2 && ov != 0 && !m.noRatio {
				fmt.Fprintf(&b, " %.2f |", hv/ov)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}

	fmt.Fprintf(&b, "\n## Fixed-rate runs\n\n%d pairs, round-robin, %v per rate after 1 s of warm-up. Latency is from the time each message was due to be sent (fixed schedule; a stall delays everything behind it and is counted, no coordinated omission). Failures: lost (not delivered %v after the last send) + late (delivered more than %v after it was due) + bounced (an error back to the sender).\n\n",
		o.pairs, o.rateWindow, drainLimit, lateAfter)
	b.WriteString("Every message is archived by every server (MAM on, both sides). fsyncs/s are fsync+fdatasync+sync_file_range+msync calls of the server's process tree over the window (perf stat on the syscall tracepoints; n/a with the reason in the notes when perf cannot count, e.g. not root or no tracefs); disk bytes are write_bytes from /proc/PID/io over the window, per message sent.\n\n")
	b.WriteString("| server | msg/s | sent | delivered | failures | lost | late | bounced | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/msg | (from ticks) | wake-ups/msg | fsyncs/s | disk bytes/msg | run-queue wait server / generator s |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		for _, x := range r.rates {
			syncs := "n/a"
			if v, ok := x.syncsPerSec(); ok {
				syncs = fmt.Sprintf("%.1f", v)
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %d | **%d** | %d | %d | %d | %.2f | %.2f | %.2f | %.1f | %.1f | %.0f | %.2f | %s | %.0f | %.2f / %.2f |\n",
				r.name, x.rate, x.sent, x.delivered, x.failures(), x.lost, x.late, x.bounced,
				ms(x.p50), ms(x.p99), ms(x.p999), ms(x.max), x.usPerMsg(),
				float64(x.cpuTicks)*1e6/clkTck/float64(max(x.sent, 1)), x.wakesPerMsg(), syncs, x.bytesPerMsg(),
				x.serverWait.Seconds(), x.genWait.Seconds())
		}
	}

	b.WriteString("\n## Offline path\n\nMessages to accounts that are not logged in, round-robin over them, from every logged-in session (at most " + fmt.Sprint(offlinePerSender) + " each, under xmppd's per-sender bound); each batch of " +
		fmt.Sprint(offlineBatch) + " is followed by a ping to the server and counted when the pong arrives (every server handles a connection's stanzas in order). " +
		"Syncs are fsync+fdatasync+sync_file_range+msync calls of the server's threads, counted with perf's syscall tracepoints; disk writes are write_bytes from /proc/PID/io.\n\n")
	b.WriteString("| server | window s | messages/s | failures (bounced) | syncs/s | syncs/msg | disk KiB/msg | server CPU µs/msg |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		x := r.off
		if x.window == 0 {
			continue
		}
		n := float64(max(x.stored, 1))
		syncs, per := "–", "–"
		if x.fsyncs >= 0 {
			syncs, per = fmt.Sprintf("%.1f", float64(x.fsyncs)/x.window.Seconds()), fmt.Sprintf("%.3f", float64(x.fsyncs)/n)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.0f | **%d** | %s | %s | %.2f | %.1f |\n", r.name, x.window.Seconds(),
			float64(x.stored)/x.window.Seconds(), x.bounced, syncs, per, float64(x.writeBytes)/1024/n, float64(x.cpuNS)/1e3/n)
	}
	b.WriteString("\n")
	uploadSection(&b, o, rs)
	mucSection(&b, o, rs)

	for _, r := range rs {
		if r.mech != "" {
			fmt.Fprintf(&b, "- %s: SASL %s; saturation window %.0f s: load generator used %.1f CPU-s, run-queue wait server %.2f s / generator %.2f s\n",
				r.name, r.mech, r.sat.window.Seconds(), r.sat.selfCPU, r.sat.serverWait.Seconds(), r.sat.genWait.Seconds())
		}
		if r.err != nil {
			fmt.Fprintf(&b, "- %s: **failed**: %v\n", r.name, r.err)
		}
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s: %s\n", r.name, n)
		}
	}
	if h != nil && h.err == nil {
		b.WriteString("\nTargets (from the issue):\n\n")
		// A target whose phase was skipped (-skip) is not judged: a
		// profiling run of one phase printed "met (0.0 KiB)" for the others.
		if h.rssN[o.nLarge] > 0 {
			check(&b, fmt.Sprintf("RSS per idle session (N=%d) ≤ 16 KiB", o.nLarge), h.perSess[o.nLarge] <= 16,
				fmt.Sprintf("%.1f KiB", h.perSess[o.nLarge]))
		}
		if p := idx["prosody"]; p != nil && p.err == nil {
			n := o.nSmall
			if h.rssN[n] > 0 && p.rssN[n] > 0 {
				check(&b, fmt.Sprintf("RSS per idle session (N=%d) ≤ 0.4× Prosody's", n), h.perSess[n] <= 0.4*p.perSess[n],
					fmt.Sprintf("%.1f vs %.1f KiB", h.perSess[n], p.perSess[n]))
			}
			if h.sat.serverCPU > 0 && p.sat.serverCPU > 0 {
				hm, pm := float64(h.sat.delivered)/h.sat.serverCPU, float64(p.sat.delivered)/p.sat.serverCPU
				check(&b, "messages per CPU-second at saturation ≥ 3× Prosody's", hm >= 3*pm, fmt.Sprintf("%.0f vs %.0f (%.2f×)", hm, pm, hm/pm))
			}
		}
		if x, ok := h.rate(500); ok {
			check(&b, "server CPU per message at 500 msg/s ≤ 40 µs", x.usPerMsg() <= 40, fmt.Sprintf("%.1f µs", x.usPerMsg()))
			check(&b, "wake-ups per message at 500 msg/s ≤ 2", x.wakesPerMsg() <= 2, fmt.Sprintf("%.2f", x.wakesPerMsg()))
		}
		if x, ok := h.rate(2000); ok {
			check(&b, "p99 latency at 2000 msg/s < 10 ms", x.delivered > 0 && x.p99 < 10*time.Millisecond, fmt.Sprintf("%.2f ms", ms(x.p99)))
		}
		var fail, sent int64
		for _, x := range h.rates {
			fail, sent = fail+x.failures(), sent+x.sent
		}
		if len(h.rates) > 0 {
			check(&b, "no failures in the fixed-rate runs", fail == 0, fmt.Sprintf("%d of %d", fail, sent))
		}
		idle := fmt.Sprintf("%d in %v with %d sessions", h.idleWakeN, o.idleWindow, h.idleSess)
		if h.idleWakeN > 0 && float64(h.idleWakeN) <= 3*o.idleWindow.Minutes()+1 {
			// perf sched and a runtime trace showed whose these are
			// (bench/README.md, "Profiling one phase").
			idle += "; at this rate they are the Go runtime's own: sysmon wakes once a minute to see whether the 2-minute forced GC is due"
		}
		if h.idleSess > 0 {
			check(&b, "zero wake-ups with idle sessions", h.idleWake == 0, idle)
		}
		phaseTargets(&b, o, h, idx["prosody"])
	}
	b.WriteString("\nRSS is VmRSS summed over the server's process tree; RssAnon (also summed) leaves out file-backed pages: xmppd maps its bbolt database file, so after the messaging phases most of its VmRSS is that file's page cache, which the kernel can reclaim. CPU at saturation is utime+stime from /proc/PID/stat over the tree; " +
		"CPU per message at fixed rates is on-CPU time from /proc/PID/task/*/schedstat summed over every thread of the tree (the kernel accounting utime+stime are made from, in ns instead of 10 ms ticks; the ticks figure is shown beside it as a cross-check) over the counted window, divided by the messages sent in it. " +
		"Wake-ups are voluntary+nonvoluntary context switches summed over every thread (/proc/PID/task/*/status). " +
		"Cold start is from exec to the first stream features answered on the c2s port (prosody and ejabberd: the restart after in-band registration of the accounts, so every server opens a store that already holds them). " +
		"Run-queue wait is from schedstat too: time spent runnable without a CPU, whether behind other load on the machine or behind the same process's other threads on its pinned core.\n")
	return b.String()
}

func check(b *strings.Builder, what string, ok bool, detail string) {
	mark := "not met"
	if ok {
		mark = "met"
	}
	fmt.Fprintf(b, "- %s: **%s** (%s)\n", what, mark, detail)
}
