package roster_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's high-water mark of resident memory (VmHWM), in
// MiB: server and clients together.
func peakRSS(b *testing.B) float64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc")
	}
	for _, l := range strings.Split(string(s), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkBroadcastMaximalRoster: the CPU one bare <presence/> costs the
// whole process (server and the test client) with a maximal roster. "none":
// 1,000 contacts without subscriptions, what one member can build alone
// (was ~0.5 s per presence at 66 MB); "both": 1,000 subscribers, local
// accounts that are offline, the most a broadcast can have to send.
//
//	go test -run '^$' -bench BroadcastMaximalRoster -benchtime 300x ./xmppd/mod/roster/
func BenchmarkBroadcastMaximalRoster(b *testing.B) {
	for _, sub := range []roster.Sub{roster.None, roster.Both} {
		b.Run(sub.String(), func(b *testing.B) {
			d := xmpptest.Start(b, nil)
			n := roster.FillMaximal(b, d.Server, "alice", sub)
			a := login(b, d, "alice", "a")
			b.ReportMetric(float64(n), "items")
			b.ResetTimer()
			c0 := cpuTime()
			for i := range b.N {
				id := fmt.Sprintf("p%d", i)
				a.Send("<presence/><iq type='get' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>")
				a.Expect("ping", result(id))
			}
			b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N), "cpu-µs/presence")
		})
	}
}

// BenchmarkRosterGetMaximal: six clients fetch a maximal roster at once
// (a probe saw 1.9 GB of RSS for that at 66 MB); reports the CPU per get
// and the process's peak RSS.
//
//	go test -run '^$' -bench RosterGetMaximal -benchtime 20x ./xmppd/mod/roster/
func BenchmarkRosterGetMaximal(b *testing.B) {
	d := xmpptest.Start(b, nil)
	n := roster.FillMaximal(b, d.Server, "alice", roster.Both)
	var cs []*cl
	for i := range 6 {
		cs = append(cs, login(b, d, "alice", fmt.Sprintf("r%d", i)))
	}
	b.ReportMetric(float64(n), "items")
	before := peakRSS(b)
	b.ResetTimer()
	c0 := cpuTime()
	for i := range b.N {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("g%d", i)
				c.Send("<iq type='get' id='" + id + "'><query xmlns='jabber:iq:roster'/></iq>")
				c.Expect("roster", result(id))
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N*len(cs)), "cpu-µs/get")
	b.ReportMetric(before, "peak-RSS-MiB-before")
	b.ReportMetric(peakRSS(b), "peak-RSS-MiB")
}
