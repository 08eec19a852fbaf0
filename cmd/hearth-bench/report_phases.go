package main

import (
	"fmt"
	"strings"
	"time"
)

// Report rows and sections of the upload and group chat phases.

func uploadRows(o *options) []metric {
	mib := o.uploadSize >> 20
	done := func(r *result) bool { return r.up.put > 0 && r.up.status != 0 }
	return []metric{
		{label: fmt.Sprintf("upload %d MiB (XEP-0363): PUT throughput", mib), value: func(r *result) (float64, bool) {
			return mibPerSec(r.up.size, r.up.put), done(r)
		}, unit: "MiB/s", prec: 1},
		{label: "upload: GET throughput", value: func(r *result) (float64, bool) {
			return mibPerSec(r.up.size, r.up.get), r.up.identical
		}, unit: "MiB/s", prec: 1},
		{label: "upload: server RSS growth during the PUT (peak − before)", value: func(r *result) (float64, bool) {
			return float64(r.up.rssPeak-r.up.rssBefore) / 1024, done(r)
		}, unit: "MiB", prec: 1},
		{label: "upload: server peak RSS during the PUT", value: func(r *result) (float64, bool) {
			return float64(r.up.rssPeak) / 1024, done(r)
		}, unit: "MiB", prec: 1},
		{label: "upload: server CPU per MiB PUT", value: func(r *result) (float64, bool) {
			return r.up.serverCPU * 1000 / float64(max(mib, 1)), done(r)
		}, unit: "ms/MiB", prec: 1},
		{label: "upload: file back byte-identical", value: func(r *result) (float64, bool) {
			if r.up.identical {
				return 1, true
			}
			return 0, done(r)
		}, unit: "1 = yes", noRatio: true},
	}
}

func mucRows(o *options) []metric {
	m := o.muc
	sat := func(r *result) bool { return r.muc.sat.window > 0 }
	fixed := func(r *result) bool { return r.muc.fixed.sent > 0 }
	return []metric{
		{label: fmt.Sprintf("group chat, %d occupants: messages/s at saturation", m.occupants), value: func(r *result) (float64, bool) {
			return float64(r.muc.sat.sent) / r.muc.sat.window.Seconds(), sat(r)
		}, unit: "msg/s"},
		{label: "group chat: deliveries/s at saturation", value: func(r *result) (float64, bool) {
			return float64(r.muc.sat.receipts) / r.muc.sat.window.Seconds(), sat(r)
		}, unit: "/s"},
		{label: "group chat: deliveries per server CPU-second at saturation", value: func(r *result) (float64, bool) {
			return float64(r.muc.sat.receipts) / (float64(r.muc.sat.cpuNS) / 1e9), sat(r) && r.muc.sat.cpuNS > 0
		}, unit: "/CPU-s"},
		{label: "group chat: syncs per message at saturation", value: func(r *result) (float64, bool) {
			return float64(r.muc.sat.fsyncs) / float64(r.muc.sat.sent), sat(r) && r.muc.sat.fsyncs >= 0 && r.muc.sat.sent > 0
		}, unit: "/msg", prec: 2, noRatio: true},
		{label: fmt.Sprintf("group chat: latency p50 to the %dth receipt at %d msg/s", m.occupants, m.rate), value: func(r *result) (float64, bool) {
			return ms(r.muc.fixed.p50), fixed(r) && r.muc.fixed.complete > 0
		}, unit: "ms", prec: 2},
		{label: fmt.Sprintf("group chat: latency p99 to the %dth receipt at %d msg/s", m.occupants, m.rate), value: func(r *result) (float64, bool) {
			return ms(r.muc.fixed.p99), fixed(r) && r.muc.fixed.complete > 0
		}, unit: "ms", prec: 2},
		{label: fmt.Sprintf("group chat: server CPU per delivery at %d msg/s", m.rate), value: func(r *result) (float64, bool) {
			return float64(r.muc.fixed.cpuNS) / 1e3 / float64(r.muc.fixed.sent*int64(m.occupants)), fixed(r)
		}, unit: "µs", prec: 1},
		{label: fmt.Sprintf("group chat: failures at %d msg/s (incomplete + late)", m.rate), value: func(r *result) (float64, bool) {
			return float64(r.muc.fixed.failures()), fixed(r)
		}, unit: "msgs", noRatio: true},
		{label: fmt.Sprintf("group chat: latency p99 to the %dth receipt at saturation", m.occupants), value: func(r *result) (float64, bool) {
			return ms(r.muc.sat.p99), sat(r) && r.muc.sat.complete > 0
		}, unit: "ms", prec: 1},
		{label: fmt.Sprintf("group chat: RssAnon per idle occupant beyond its session's (%d in rooms of %d)", m.idleN, m.idleRoom), value: func(r *result) (float64, bool) {
			return r.muc.idle.perOccKB(), r.muc.idle.joinAll > 0
		}, unit: "KiB", prec: 2},
		{label: "group chat: RssAnon per idle occupant over the second half's joins", value: func(r *result) (float64, bool) {
			return r.muc.idle.marginalKB(), r.muc.idle.joinAll > 0 && r.muc.idle.half > 0
		}, unit: "KiB", prec: 2},
		{label: fmt.Sprintf("group chat: RssAnon per idle session, for scale (%d)", m.idleN), value: func(r *result) (float64, bool) {
			return r.muc.idle.perSessKB(), r.muc.idle.anonSess > 0
		}, unit: "KiB", prec: 1},
		{label: fmt.Sprintf("group chat: join a room with %d archived messages (history %d), median", m.archive, m.history), value: func(r *result) (float64, bool) {
			return ms(median(r.muc.joinTimes)), len(r.muc.joinTimes) > 0
		}, unit: "ms", prec: 2},
		{label: fmt.Sprintf("group chat: then the last %d from the room's archive, median", m.mamMax), value: func(r *result) (float64, bool) {
			return ms(median(r.muc.mamTimes)), len(r.muc.mamTimes) > 0
		}, unit: "ms", prec: 2},
	}
}

func pepRows(o *options) []metric {
	p := o.pep
	ok := func(r *result) bool { return r.pep.complete > 0 }
	return []metric{
		{label: fmt.Sprintf("PEP: publish to the %dth contact's notification, p50", p.subscribers), value: func(r *result) (float64, bool) {
			return ms(r.pep.p50), ok(r)
		}, unit: "ms", prec: 2},
		{label: fmt.Sprintf("PEP: publish to the %dth contact's notification, p99", p.subscribers), value: func(r *result) (float64, bool) {
			return ms(r.pep.p99), ok(r)
		}, unit: "ms", prec: 2},
		{label: "PEP: server CPU per notification", value: func(r *result) (float64, bool) {
			return float64(r.pep.cpuNS) / 1e3 / float64(r.pep.delivered), ok(r) && r.pep.delivered > 0
		}, unit: "µs", prec: 1},
		{label: fmt.Sprintf("PEP: items (of %d) that reached every contact", p.items), value: func(r *result) (float64, bool) {
			return float64(r.pep.complete), r.pep.items > 0
		}, unit: "items", noRatio: true},
	}
}

func uploadSection(b *strings.Builder, o *options, rs []*result) {
	fmt.Fprintf(b, "## Upload\n\nOne file of %d MiB (pseudo-random bytes) through XEP-0363: a slot from upload.%s over XMPP, the PUT to the slot's URL (connections go to 127.0.0.1 at the URL's port, Host as in the URL), the GET back, compared by SHA-256. "+
		"Server RSS is VmRSS summed over its process tree, sampled every 10 ms during the PUT; VmHWM is the main process's peak after clear_refs reset it just before the PUT (a peak between two samples).\n\n", o.uploadSize>>20, o.domain)
	b.WriteString("| server | slot ms | PUT s | PUT MiB/s | GET s | identical | RSS before MiB | peak MiB | growth MiB | VmHWM growth MiB | samples | server CPU s |\n|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		x := r.up
		if x.put == 0 {
			continue
		}
		hwm := "–"
		if x.hwmBefore > 0 {
			hwm = fmt.Sprintf("%.1f", float64(x.hwmAfter-x.hwmBefore)/1024)
		}
		fmt.Fprintf(b, "| %s | %.1f | %.2f | %.1f | %.2f | %v | %.1f | %.1f | **%.1f** | %s | %d | %.2f |\n", r.name, ms(x.slot), x.put.Seconds(), mibPerSec(x.size, x.put),
			x.get.Seconds(), x.identical, float64(x.rssBefore)/1024, float64(x.rssPeak)/1024, float64(x.rssPeak-x.rssBefore)/1024, hwm, x.samples, x.serverCPU)
	}
	b.WriteString("\n")
}

func mucSection(b *strings.Builder, o *options, rs []*result) {
	m := o.muc
	fmt.Fprintf(b, "## Group chat\n\nOne room on groups.%s configured the same on every server (persistent, public, open, non-anonymous, archived; checked in the room's disco#info), %d occupants, messages from each occupant in turn. "+
		"A message is complete when all %d occupants (the sender's echo included) have it; latency runs from the time it was due (fixed rate) or sent (saturation) to the last receipt. "+
		"Saturation: one message in flight per occupant for %v or %d messages; fixed rate: %d msg/s for %v after 1 s of warm-up. "+
		"Then a second room is filled with %d messages by its owner, and a newcomer joins it %d times (history maxstanzas=%d; timed to the subject, which ends the history) and asks its archive for the last %d (XEP-0313, RSM before).\n\n",
		o.domain, m.occupants, m.occupants, m.satWindow, m.satMax, m.rate, m.rateWin, m.archive, m.joins, m.history, m.mamMax)
	b.WriteString("| server | run | sent | complete | deliveries | window s | msg/s | deliveries/s | server CPU µs/delivery | p50 ms | p99 ms | max ms | failures | syncs/msg | run-queue wait s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		for _, x := range []fanResult{r.muc.sat, r.muc.fixed} {
			if x.sent == 0 {
				continue
			}
			run := fmt.Sprintf("saturation (%d in flight)", x.inflight)
			if x.rate > 0 {
				run = fmt.Sprintf("%d msg/s", x.rate)
			}
			syncs := "–"
			if x.fsyncs >= 0 {
				syncs = fmt.Sprintf("%.2f", float64(x.fsyncs)/float64(max(x.sent, 1)))
			}
			fmt.Fprintf(b, "| %s | %s | %d | %d | %d | %.1f | %.0f | %.0f | %.1f | %.2f | %.2f | %.1f | **%d** | %s | %.2f |\n", r.name, run, x.sent, x.complete, x.receipts, x.window.Seconds(),
				float64(x.sent)/x.window.Seconds(), float64(x.receipts)/x.window.Seconds(), float64(x.cpuNS)/1e3/float64(max(x.receipts, 1)),
				ms(x.p50), ms(x.p99), ms(x.maxLat), x.failures(), syncs, x.serverWait.Seconds())
		}
	}
	b.WriteString("\nSyncs are the server's fsync, fdatasync, sync_file_range and msync calls over the saturation window (perf stat), per message sent in it.\n\n")
	b.WriteString("| server | occupants joined in ms | archive filled at msg/s | joins ms | history got | archive queries ms | archive got |\n|---|---:|---:|---|---:|---|---:|\n")
	for _, r := range rs {
		x := r.muc
		if x.joinAll == 0 {
			continue
		}
		fmt.Fprintf(b, "| %s | %.1f | %.0f | %s | %d | %s | %d |\n", r.name, ms(x.joinAll), x.fillRate,
			durations(x.joinTimes), x.history, durations(x.mamTimes), x.mamGot)
	}
	if m.idleN > 0 {
		fmt.Fprintf(b, "\nIdle occupants, on a freshly started server with nothing else logged in: %d sessions log in and sit idle, then each joins one of %d-occupant rooms configured like the fan-out room (history 0). "+
			"The rooms are joined in two halves. RssAnon of the server's process tree (VmRSS less file-backed pages) is read once it has settled (five 1 s samples within 0.5%%; their median), at rest, with the sessions, after the first half of the rooms filled and after all. "+
			"Per occupant = (after all − with the sessions) / %d, which includes what the first join burst left the heap grown by; second half = (after all − after the first half) / its occupants, one more idle occupant's cost; per session = (with the sessions − at rest) / %d.\n\n", m.idleN, m.idleRoom, m.idleN, m.idleN)
		b.WriteString("| server | sessions | rooms | RssAnon at rest MiB | with the sessions MiB | after half the joins MiB | after all MiB | VmRSS with the sessions / after MiB | joined in ms | settled s | per session KiB | per occupant KiB | second half, per occupant KiB |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|\n")
		for _, r := range rs {
			x := r.muc.idle
			if x.joinAll == 0 {
				continue
			}
			fmt.Fprintf(b, "| %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f / %.1f | %.0f | %.0f, %.0f | %.1f | **%.2f** | %.2f |\n", r.name, x.n, x.rooms,
				float64(x.anonRest)/1024, float64(x.anonSess)/1024, float64(x.anonHalf)/1024, float64(x.anonOcc)/1024, float64(x.rssSess)/1024, float64(x.rssOcc)/1024,
				ms(x.joinAll), x.settleSess.Seconds(), x.settleOcc.Seconds(), x.perSessKB(), x.perOccKB(), x.marginalKB())
		}
	}
	for _, r := range rs {
		if r.muc.features != "" {
			fmt.Fprintf(b, "\n- %s room features: %s", r.name, r.muc.features)
		}
	}
	b.WriteString("\n\n")
}

func durations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.1f", ms(d)))
	}
	return strings.Join(s, ", ")
}

// phaseTargets are the issues' targets for these phases.
func phaseTargets(b *strings.Builder, o *options, h, p *result) {
	if h.up.put > 0 {
		growth := float64(h.up.rssPeak-h.up.rssBefore) * 1024
		check(b, fmt.Sprintf("memory stays flat during a %d MiB upload (RSS growth under a tenth of the file)", o.uploadSize>>20),
			growth < float64(o.uploadSize)/10, fmt.Sprintf("+%.1f MiB", growth/(1<<20)))
	}
	if x := h.muc.idle; x.joinAll > 0 {
		check(b, "RSS per idle occupant under 2 KiB beyond the session's own", x.perOccKB() < 2,
			fmt.Sprintf("%.2f KiB RssAnon with %d occupants in %d rooms; %.2f KiB over the second half's joins", x.perOccKB(), x.n, x.rooms, x.marginalKB()))
	}
	if p != nil && p.err == nil && h.muc.sat.cpuNS > 0 && p.muc.sat.cpuNS > 0 {
		hv := float64(h.muc.sat.receipts) / float64(h.muc.sat.cpuNS)
		pv := float64(p.muc.sat.receipts) / float64(p.muc.sat.cpuNS)
		check(b, "group chat deliveries per CPU-second ≥ 3× Prosody's", hv >= 3*pv, fmt.Sprintf("%.0f vs %.0f (%.2f×)", hv*1e9, pv*1e9, hv/pv))
	}
}
