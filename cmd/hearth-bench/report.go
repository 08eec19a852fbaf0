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
}

func report(o *options, rs []*result) string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rows := []metric{
		{"cold start to first stream features", func(r *result) (float64, bool) { return ms(r.coldStart), r.coldStart > 0 }, "ms", 0},
		{"RSS at rest (accounts created, no sessions)", func(r *result) (float64, bool) { return float64(r.rssRest) / 1024, r.rssRest > 0 }, "MiB", 1},
	}
	ns := []int{o.nSmall}
	if o.nLarge != o.nSmall {
		ns = append(ns, o.nLarge)
	}
	for _, n := range ns {
		rows = append(rows,
			metric{fmt.Sprintf("RSS with %d idle sessions", n), func(r *result) (float64, bool) { return float64(r.rssN[n]) / 1024, r.rssN[n] > 0 }, "MiB", 1},
			metric{fmt.Sprintf("RSS per idle session (N=%d)", n), func(r *result) (float64, bool) { return r.perSess[n], r.rssN[n] > 0 }, "KiB", 1},
		)
	}
	rows = append(rows,
		metric{fmt.Sprintf("time to open %d sessions", o.nSmall), func(r *result) (float64, bool) {
			d := r.loginN[o.nSmall]
			return d.Seconds(), d > 0
		}, "s", 2},
		metric{"messages/s at saturation", func(r *result) (float64, bool) {
			return float64(r.sat.delivered) / r.sat.window.Seconds(), r.sat.window > 0
		}, "msg/s", 0},
		metric{"server CPU during saturation", func(r *result) (float64, bool) {
			return r.sat.serverCPU / r.sat.window.Seconds() * 100, r.sat.window > 0
		}, "% of a core", 0},
		metric{"messages per server CPU-second", func(r *result) (float64, bool) {
			return float64(r.sat.delivered) / r.sat.serverCPU, r.sat.serverCPU > 0
		}, "msg/CPU-s", 0},
		metric{fmt.Sprintf("latency p50 at %d msg/s", o.latRate), func(r *result) (float64, bool) { return ms(r.lat.p50), r.lat.received > 0 }, "ms", 2},
		metric{fmt.Sprintf("latency p99 at %d msg/s", o.latRate), func(r *result) (float64, bool) { return ms(r.lat.p99), r.lat.received > 0 }, "ms", 2},
		metric{"logins/s (TCP+STARTTLS+SCRAM+bind, 16 parallel)", func(r *result) (float64, bool) {
			return float64(r.login.ok) / r.login.window.Seconds(), r.login.window > 0
		}, "login/s", 0},
		metric{fmt.Sprintf("CPU over %v idle, %d sessions", o.idleWindow, o.nSmall), func(r *result) (float64, bool) { return r.idleCPU, r.idleSess > 0 }, "CPU-s", 2},
		metric{fmt.Sprintf("wake-ups/s over %v idle, %d sessions", o.idleWindow, o.nSmall), func(r *result) (float64, bool) { return r.idleWake, r.idleSess > 0 }, "/s", 1},
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
			if ok1 && ok2 && ov != 0 {
				fmt.Fprintf(&b, " %.2f |", hv/ov)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	for _, r := range rs {
		if r.mech != "" {
			fmt.Fprintf(&b, "- %s: SASL %s", r.name, r.mech)
			if r.lat.sent > 0 {
				fmt.Fprintf(&b, "; latency run delivered %d/%d, max %.1f ms", r.lat.received, r.lat.sent, ms(r.lat.max))
			}
			fmt.Fprintf(&b, "; saturation window %.0f s: load generator used %.1f CPU-s, run-queue wait server %.2f s / generator %.2f s",
				r.sat.window.Seconds(), r.sat.selfCPU, r.sat.serverWait.Seconds(), r.sat.genWait.Seconds())
			fmt.Fprintf(&b, "; latency run: run-queue wait server %.2f s / generator %.2f s\n", r.latServerWait.Seconds(), r.latGenWait.Seconds())
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
		if p := idx["prosody"]; p != nil && p.err == nil {
			n := o.nLarge
			check(&b, fmt.Sprintf("per idle session (N=%d) ≤ ½ Prosody's", n), h.perSess[n] <= p.perSess[n]/2,
				fmt.Sprintf("%.1f vs %.1f KiB", h.perSess[n], p.perSess[n]))
			hm, pm := float64(h.sat.delivered)/h.sat.serverCPU, float64(p.sat.delivered)/p.sat.serverCPU
			check(&b, "messages per CPU-second ≥ 3× Prosody's", hm >= 3*pm, fmt.Sprintf("%.0f vs %.0f (%.2f×)", hm, pm, hm/pm))
		}
		check(&b, fmt.Sprintf("p99 latency at %d msg/s < 10 ms", o.latRate), h.lat.received > 0 && h.lat.p99 < 10*time.Millisecond,
			fmt.Sprintf("%.2f ms", ms(h.lat.p99)))
		check(&b, "zero wake-ups per second with idle sessions", h.idleWake == 0, fmt.Sprintf("%d in %v", h.idleWakeN, o.idleWindow))
	}
	b.WriteString("\nRSS is VmRSS summed over the server's process tree; CPU is utime+stime from /proc/PID/stat over the tree; " +
		"wake-ups are voluntary+nonvoluntary context switches summed over every thread (/proc/PID/task/*/status) during the idle window, divided by its length. " +
		"Cold start is from exec to the first stream features answered on the c2s port (prosody and ejabberd: the restart after in-band registration of the accounts, so every server opens a store that already holds them). " +
		"Run-queue wait is from /proc/…/task/*/schedstat summed over threads: time spent runnable without a CPU, whether behind other load on the machine or behind the same process's other threads on its pinned core.\n")
	return b.String()
}

func check(b *strings.Builder, what string, ok bool, detail string) {
	mark := "not met"
	if ok {
		mark = "met"
	}
	fmt.Fprintf(b, "- %s: **%s** (%s)\n", what, mark, detail)
}
