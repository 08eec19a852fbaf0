package mam

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// BenchmarkDeliver is one chat message from a local client to another
// account's online session, through the core's routing and delivery (the
// session serializes it into its queue; the client side discards it), with
// the archive and without it: the CPU the archive adds per message
// (issue 13's on/off ratio), without the network, TLS and parsing that
// make bench's saturation run also has. Run it with -cpu 1, so that the
// commit queue's and the writers' goroutines share the one core and their
// work is in ns/op:
//
//	go test -run '^$' -bench BenchmarkDeliver -cpu 1 -count 5 ./xmppd/mod/mam/
func BenchmarkDeliver(b *testing.B) {
	for _, archive := range []bool{false, true} {
		name := "archive-off"
		if archive {
			name = "archive-on"
		}
		b.Run(name, func(b *testing.B) {
			st := openBenchStore(b)
			srv, err := server.New(domain, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			for _, u := range []string{"alice", "bob"} {
				if err := st.CreateAccount(u, u+"-pw", false); err != nil {
					b.Fatal(err)
				}
			}
			if archive {
				Register(srv)
			}
			sess := map[string]*session.Session{}
			for _, u := range []string{"alice", "bob"} {
				srvEnd, client := net.Pipe()
				go io.Copy(io.Discard, client)
				b.Cleanup(func() { client.Close() })
				s := session.New(srvEnd, jid.MustParse(u+"@"+domain+"/res"), stream.NSClient)
				srv.Router.Bind(s)
				sess[u] = s
			}
			el, err := stream.ParseElement([]byte("<message xmlns='jabber:client' type='chat' to='bob@" + domain + "/res' id='m'><body>A message of about the length people write, with a few words in it.</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"))
			if err != nil {
				b.Fatal(err)
			}
			alice := sess["alice"]
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				srv.FromClient(alice, el.Copy())
				if i%256 == 255 {
					// One message in flight per pair in make bench; here a
					// bounded backlog, so that commits still gather.
					srv.WaitCommits(alice, 10*time.Second)
				}
			}
			if !srv.WaitCommits(alice, 10*time.Second) {
				b.Fatal("commits never finished")
			}
			// Wall time is mostly the commits' fsyncs; the process's CPU
			// time is what the on/off ratio compares.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func openBenchStore(b *testing.B) *store.Store {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
