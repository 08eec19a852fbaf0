// Command hearth-bench measures Hearth's xmppd against Debian's prosody
// and ejabberd on loopback: memory at rest and per idle session, message
// throughput and CPU cost at saturation, logins per second, idle CPU and
// wake-ups, cost per message and wake-ups at fixed rates (50, 500, 2000
// msg/s) with latency measured from the intended send time and lost or late
// messages counted as failures, the offline path (messages/s and fsyncs to
// members who are not logged in), cold start, and three feature phases:
// HTTP upload of a 50 MiB file with the server's memory during the PUT
// (upload.go), group chat fan-out to 50 occupants of an archived room and
// joining a room with 1,000 archived messages (muc.go), PEP events to
// 50 contacts (pep.go), and paging an account archive of 100,000 real
// messages 50 at a time (mam.go). Fixed-rate runs also count fsyncs and
// disk bytes per message; memory rows show RssAnon beside VmRSS. Each
// server is started by
// this command from a throwaway directory, pinned to one core; the load
// generator should be pinned to the other (bench/run.sh does both).
//
//	hearth-bench -xmppd ./xmppd -bench-dir bench -out out/bench.md
//
// BENCH_QUICK=1 (or -quick) is a smoke version: N=200, short windows.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	servers   []string
	xmppd     string
	benchDir  string
	out       string
	work      string
	keep      bool
	domain    string
	serverCPU string
	quick     bool

	nSmall, nLarge int
	idleWindow     time.Duration
	satWindow      time.Duration
	loginWindow    time.Duration
	pairs          int
	// fixed-rate runs: total msg/s over all pairs, each for rateWindow
	// after a warm-up
	rates      []int
	rateWindow time.Duration
	offWindow  time.Duration
	// for profiling one phase (bench/README.md, "Profiling"): phases
	// left out, and how long to hold the idle sessions open
	skip     map[string]bool
	idleHold time.Duration
	// upload phase (upload.go): the file's size in bytes
	uploadSize int64
	// group chat phase (muc.go)
	muc mucOptions
	// PEP phase (pep.go)
	pep pepOptions
	// account archive phase (mam.go)
	mam mamOptions
	// federation phase (s2s.go)
	s2s s2sOptions
}

func main() {
	o := &options{}
	var servers string
	flag.StringVar(&servers, "servers", "hearth,prosody,ejabberd", "servers to run, comma-separated")
	flag.StringVar(&o.xmppd, "xmppd", "./xmppd", "path to the xmppd binary")
	flag.StringVar(&o.benchDir, "bench-dir", "bench", "directory with prosody.cfg.lua and ejabberd.yml templates")
	flag.StringVar(&o.out, "out", "out/bench.md", "where to write the markdown report (also printed)")
	flag.StringVar(&o.work, "work", "", "scratch directory (default: a new temp dir, removed afterwards)")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory")
	flag.StringVar(&o.domain, "domain", "bench.localhost", "XMPP domain of every server")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list for taskset on the server (empty: no pinning)")
	flag.BoolVar(&o.quick, "quick", os.Getenv("BENCH_QUICK") == "1", "short smoke run (also BENCH_QUICK=1)")
	var rates, skip string
	var rateWindow time.Duration
	var pairs, nSmall, nLarge int
	flag.StringVar(&rates, "rates", "", "fixed rates in msg/s, comma-separated (default 50,500,1000,2000)")
	flag.DurationVar(&rateWindow, "rate-window", 0, "counted window of each fixed-rate run (default 20s, quick 4s)")
	flag.IntVar(&pairs, "pairs", 0, "message pairs (default 50, quick 20)")
	flag.IntVar(&nSmall, "n-small", 0, "idle sessions for the small idle measurement (default 1000, quick 200)")
	flag.IntVar(&nLarge, "n-large", 0, "idle sessions for the large one and accounts made (default 5000, quick 200)")
	flag.StringVar(&skip, "skip", "", "phases to leave out, comma-separated: idle,ws,sat,rates,logins,upload,muc,pep,mam,offline,s2s (for profiling one; muc-fanout leaves out the group chat phase but not its idle-occupant memory)")
	var uploadMiB, occupants, archive int
	flag.IntVar(&uploadMiB, "upload-mib", 0, "size of the uploaded file in MiB (default 50, quick 4)")
	flag.IntVar(&occupants, "muc-occupants", 0, "occupants of the fan-out room (default 50, quick 10)")
	flag.IntVar(&archive, "muc-archive", 0, "messages in the archived room a newcomer joins (default 1000, quick 100)")
	idleOcc, idleRoom := -1, 0
	flag.IntVar(&idleOcc, "muc-idle", -1, "sessions that join rooms in the idle-occupant memory measurement (default 1000, quick 100; 0 leaves it out)")
	flag.IntVar(&idleRoom, "muc-idle-room", 0, "occupants per room in it (default 50, quick 25)")
	var mamFill int
	flag.IntVar(&mamFill, "mam-fill", 0, "messages sent into one account's archive before paging it (default 100000, quick 500)")
	var idleWindow time.Duration
	flag.DurationVar(&idleWindow, "idle-window", 0, "idle measurement window (default 60s, quick 10s)")
	flag.DurationVar(&o.idleHold, "idle-hold", 0, "keep the large number of idle sessions open this long (to take a heap profile)")
	flag.Parse()
	// -servers "" runs only the phases that start servers of their own
	// (s2s).
	o.servers = strings.FieldsFunc(servers, func(r rune) bool { return r == ',' })
	// 1000 msg/s is issue 13's rate for fsyncs/s and disk bytes per
	// archived message (counted at every rate).
	o.rates = []int{50, 500, 1000, 2000}
	if o.quick {
		o.nSmall, o.nLarge = 200, 200
		o.idleWindow, o.satWindow, o.loginWindow = 10*time.Second, 5*time.Second, 5*time.Second
		o.rateWindow, o.offWindow = 4*time.Second, 4*time.Second
		o.pairs = 20
		o.uploadSize = 4 << 20
		o.muc = mucOptions{occupants: 10, satWindow: 2 * time.Second, satMax: 1000, rate: 10, rateWin: 2 * time.Second,
			archive: 100, joins: 2, history: 20, mamMax: 50, idleN: 100, idleRoom: 25}
		o.pep = pepOptions{subscribers: 10, items: 5}
		o.mam = mamOptions{fill: 500, fillWindow: 10 * time.Second, page: 50, queries: 3}
		o.s2s = s2sOptions{pairs: 5, inflight: 8, warm: time.Second, window: 3 * time.Second, domains: 20}
	} else {
		o.nSmall, o.nLarge = 1000, 5000
		o.idleWindow, o.satWindow, o.loginWindow = 60*time.Second, 15*time.Second, 10*time.Second
		// 50 msg/s × 20 s is 1000 messages: enough for a p99.9 and
		// for CPU time well above the noise of one idle second.
		o.rateWindow, o.offWindow = 20*time.Second, 15*time.Second
		o.pairs = 50
		o.uploadSize = 50 << 20
		// satMax keeps the fan-out room's archive under every server's
		// bound (Prosody's internal store: 10,000 items; xmppd: 20,000).
		o.muc = mucOptions{occupants: 50, satWindow: 10 * time.Second, satMax: 8000, rate: 20, rateWin: 10 * time.Second,
			archive: 1000, joins: 5, history: 20, mamMax: 50, idleN: 1000, idleRoom: 50}
		o.pep = pepOptions{subscribers: 50, items: 50}
		// 100,000 messages is the archive; the window bounds
		// the fill on a server that cannot archive that many in it
		// (the report says how many it holds).
		o.mam = mamOptions{fill: 100000, fillWindow: 60 * time.Second, page: 50, queries: 5}
		// 100 remote domains: enough that the per-domain figure is well
		// above the noise of RssAnon (a few hundred KiB).
		o.s2s = s2sOptions{pairs: 20, inflight: 16, warm: 2 * time.Second, window: 10 * time.Second, domains: 100}
	}
	if uploadMiB > 0 {
		o.uploadSize = int64(uploadMiB) << 20
	}
	if occupants > 0 {
		o.muc.occupants = occupants
	}
	if archive > 0 {
		o.muc.archive = archive
	}
	if idleOcc >= 0 {
		o.muc.idleN = idleOcc
	}
	if idleRoom > 0 {
		o.muc.idleRoom = idleRoom
	}
	if mamFill > 0 {
		o.mam.fill = mamFill
	}
	if rates != "" {
		o.rates = nil
		for _, f := range strings.Split(rates, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				log.Fatalf("-rates: %q is not a rate", f)
			}
			o.rates = append(o.rates, n)
		}
	}
	o.skip = map[string]bool{}
	for _, p := range strings.Split(skip, ",") {
		if p != "" {
			o.skip[p] = true
		}
	}
	for _, set := range []struct {
		v   *int
		was int
	}{{&o.pairs, pairs}, {&o.nSmall, nSmall}, {&o.nLarge, nLarge}} {
		if set.was > 0 {
			*set.v = set.was
		}
	}
	// The group chat phase's accounts follow the message pairs', the PEP
	// phase's follow those.
	o.nLarge = max(o.nLarge, o.nSmall, o.pepFirst()+o.pep.subscribers, o.mamFirst()+1, o.muc.idleN)
	if rateWindow > 0 {
		o.rateWindow = rateWindow
	}
	if idleWindow > 0 {
		o.idleWindow = idleWindow
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("hearth-bench: ")
	raiseNofile()

	if o.work == "" {
		d, err := os.MkdirTemp("", "hearth-bench-")
		if err != nil {
			log.Fatal(err)
		}
		o.work = d
	}
	// The scratch dir goes away unless asked to keep it; os.Exit skips
	// defers, so every exit below goes through exit.
	exit := func(code int) {
		if !o.keep && o.work != "" && strings.Contains(filepath.Base(o.work), "hearth-bench-") {
			os.RemoveAll(o.work)
		}
		os.Exit(code)
	}
	certPEM, keyPEM, err := selfSigned(o.domain)
	if err != nil {
		log.Print(err)
		exit(2)
	}
	var results []*result
	failed := false
	for _, name := range o.servers {
		r := runOne(o, name, certPEM, keyPEM)
		if r.err != nil {
			failed = true
			log.Printf("%s: %v", name, r.err)
		}
		results = append(results, r)
	}
	var fed *s2sResult
	if !o.skip["s2s"] {
		fed = runS2S(o)
		if fed.failed() {
			failed = true
		}
	}
	md := report(o, results)
	if fed != nil {
		var b strings.Builder
		s2sSection(&b, o, fed)
		md += b.String()
	}
	fmt.Print(md)
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			log.Print(err)
			exit(2)
		}
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			log.Print(err)
			exit(2)
		}
	}
	if failed {
		exit(1)
	}
	exit(0)
}

// pepFirst is the PEP phase's publisher account; its contacts follow.
// Accounts after the message pairs' and the group chat phase's, so that
// no phase's login replaces another's session (same resource).
func (o *options) pepFirst() int { return 2*o.pairs + o.muc.occupants + 2 }

// mamFirst is the account archive phase's sender; its receiver (whose
// archive is paged) is the next account. After the PEP phase's accounts,
// so that no other phase's messages are in that archive.
func (o *options) mamFirst() int { return o.pepFirst() + o.pep.subscribers + 1 }

// raiseNofile lifts the fd limit for us and for the servers we start:
// 5000 sessions are 5000 sockets on each side.
func raiseNofile() {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	want := uint64(65536)
	if r.Max < want {
		r.Max = want // works as root; otherwise we keep what we have
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

// selfSigned makes one ECDSA P-256 certificate for the test domain that
// every server uses, so all do the same TLS work.
func selfSigned(domain string) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// result holds one server's figures; zero values mean "not measured".
type result struct {
	name      string
	err       error
	mech      string
	coldStart time.Duration
	rssRest   int64 // KiB
	rssN      map[int]int64
	// RssAnon beside the VmRSS figures (KiB): at rest, with N sessions,
	// and VmRSS/RssAnon after the one-to-one messaging phases
	anonRest        int64
	anonN           map[int]int64
	rssMsg, anonMsg int64
	mam             mamResult
	perSess         map[int]float64 // KiB per session
	loginN          map[int]time.Duration
	idleCPU         float64 // seconds over the idle window
	idleWake        float64 // context switches per second
	idleWakeN       int64   // context switches in the idle window
	idleSess        int
	sat             satResult
	rates           []rateResult
	login           loginResult
	off             offlineResult
	// over WebSocket (ws.go): RSS with wsN idle sessions, per session,
	// and saturation
	wsRSS     int64
	wsPerSess float64
	wsN       int
	wsSat     satResult
	up        uploadResult
	muc       mucResult
	pep       pepResult
	notes     []string
}

// rate returns the fixed-rate run at perSec msg/s, if there was one.
func (r *result) rate(perSec int) (rateResult, bool) {
	for _, x := range r.rates {
		if x.rate == perSec {
			return x, true
		}
	}
	return rateResult{}, false
}

func runOne(o *options, name string, certPEM, keyPEM []byte) (r *result) {
	r = &result{name: name, rssN: map[int]int64{}, anonN: map[int]int64{}, perSess: map[int]float64{}, loginN: map[int]time.Duration{}}
	s, err := newServer(name, o, o.work, certPEM, keyPEM)
	if err != nil {
		r.err = err
		return r
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	l := &loader{addr: s.addr(), domain: o.domain, prefix: "b", password: "bench-" + hex.EncodeToString(pw),
		tls: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	nAcc := o.nLarge
	if s.preAccounts != nil {
		log.Printf("%s: creating %d accounts", name, nAcc)
		t := time.Now()
		if err := s.preAccounts(l.prefix, nAcc, l.password); err != nil {
			r.err = err
			return r
		}
		log.Printf("%s: accounts created in %v", name, time.Since(t).Round(time.Millisecond))
	}
	log.Printf("%s: starting on %s: %s", name, s.addr(), strings.Join(s.argv, " "))
	if err := s.start(); err != nil {
		r.err = fmt.Errorf("start: %w", err)
		return r
	}
	defer func() {
		s.stop()
		if r.err != nil {
			log.Printf("%s logs:\n%s", name, s.tailLog())
		}
	}()
	if r.coldStart, err = s.waitReady(o.domain, 60*time.Second); err != nil {
		r.err = err
		return r
	}
	log.Printf("%s: ready after %v", name, r.coldStart.Round(time.Millisecond))
	if s.preAccounts == nil {
		// In-band registration; each login also warms the key cache.
		log.Printf("%s: registering %d accounts in band", name, nAcc)
		ss, el, err := l.openSessions(1, nAcc+1, 8, true, 5*time.Minute)
		if err != nil {
			r.err = fmt.Errorf("registration: %w", err)
			return r
		}
		closeAll(ss)
		log.Printf("%s: registered in %v; restarting so that memory at rest does not include registration garbage", name, el.Round(time.Millisecond))
		// The restart is also the cold start we report: like xmppd's,
		// it opens a store that already holds the accounts.
		s.stop()
		if err := s.start(); err != nil {
			r.err = fmt.Errorf("restart: %w", err)
			return r
		}
		if r.coldStart, err = s.waitReady(o.domain, 60*time.Second); err != nil {
			r.err = err
			return r
		}
		log.Printf("%s: ready again after %v", name, r.coldStart.Round(time.Millisecond))
	}
	pid := s.pid()
	time.Sleep(3 * time.Second)
	m0 := measure(pid)
	r.rssRest, r.anonRest = m0.rssKB, m0.rssAnonKB

	// Idle sessions, N small then N large.
	var all []*session
	defer func() { closeAll(all) }()
	for _, n := range []int{o.nSmall, o.nLarge} {
		if n <= len(all) || o.skip["idle"] {
			continue
		}
		ss, el, err := l.openSessions(len(all)+1, n+1, 16, false, 5*time.Minute)
		if err != nil {
			r.err = fmt.Errorf("idle sessions: %w", err)
			return r
		}
		all = append(all, ss...)
		r.loginN[n] = el
		if r.mech == "" {
			r.mech = all[0].c.Mechanism()
		}
		log.Printf("%s: %d sessions open (last %d in %v)", name, len(all), len(ss), el.Round(time.Millisecond))
		time.Sleep(3 * time.Second)
		mn := measure(pid)
		r.rssN[n], r.anonN[n] = mn.rssKB, mn.rssAnonKB
		r.perSess[n] = float64(r.rssN[n]-r.rssRest) / float64(n)
		if n == o.nSmall {
			log.Printf("%s: idle window %v with %d sessions", name, o.idleWindow, n)
			a := measure(pid)
			time.Sleep(o.idleWindow)
			b := measure(pid)
			r.idleSess = n
			r.idleCPU = float64(b.cpuTicks-a.cpuTicks) / clkTck
			r.idleWakeN = int64(b.ctxsw - a.ctxsw)
			r.idleWake = float64(r.idleWakeN) / o.idleWindow.Seconds()
		}
	}
	if o.idleHold > 0 && len(all) > 0 {
		log.Printf("%s: holding %d idle sessions for %v (server pid %d)", name, len(all), o.idleHold, pid)
		time.Sleep(o.idleHold)
	}
	// Messaging and logins run on a freshly restarted server with only the
	// message pairs logged in: a garbage-collected heap left over from 5000
	// sessions (Lua's, Erlang's, Go's) would otherwise tax whichever server
	// holds on to it most, and the figures would depend on phase order.
	closeAll(all)
	all = nil
	s.stop()
	if err := s.start(); err != nil {
		r.err = fmt.Errorf("restart: %w", err)
		return r
	}
	if _, err := s.waitReady(o.domain, 60*time.Second); err != nil {
		r.err = err
		return r
	}
	pid = s.pid()
	if !o.skip["muc"] && o.muc.idleN > 0 {
		// Memory per idle occupant (muc.go) on this fresh server, then
		// a fresh one again for the rest.
		if err := idleOccupantsPhase(o, name, pid, l, 1, r); err != nil {
			r.err = fmt.Errorf("group chat: %w", err)
			return r
		}
		s.stop()
		if err := s.start(); err != nil {
			r.err = fmt.Errorf("restart: %w", err)
			return r
		}
		if _, err := s.waitReady(o.domain, 60*time.Second); err != nil {
			r.err = err
			return r
		}
		pid = s.pid()
	}
	if s.wsURL != "" && !o.skip["ws"] {
		// Its own fresh server too, for the same reason; restarted
		// again after it.
		if err := wsPhase(o, name, pid, s.wsURL, l, r); err != nil {
			r.err = err
			return r
		}
		s.stop()
		if err := s.start(); err != nil {
			r.err = fmt.Errorf("restart: %w", err)
			return r
		}
		if _, err := s.waitReady(o.domain, 60*time.Second); err != nil {
			r.err = err
			return r
		}
		pid = s.pid()
	} else if s.wsURL == "" && !o.skip["ws"] {
		r.notes = append(r.notes, "no WebSocket endpoint in this benchmark's configuration")
	}
	all, _, err = l.openSessions(1, 2*o.pairs+1, 16, false, time.Minute)
	if err != nil {
		r.err = fmt.Errorf("message pairs: %w", err)
		return r
	}
	time.Sleep(2 * time.Second)
	senders, receivers := all[:o.pairs], all[o.pairs:]

	if o.skip["sat"] {
		o.satWindow = 0
	} else {
		log.Printf("%s: saturation, %d pairs, %v", name, o.pairs, o.satWindow)
		r.sat = saturate(pid, senders, receivers, 64, 2*time.Second, o.satWindow)
	}
	if r.sat.selfCPU > 0.9*r.sat.window.Seconds() && r.sat.serverCPU < 0.9*r.sat.window.Seconds() {
		r.notes = append(r.notes, fmt.Sprintf("saturation was load-generator bound (generator %.1f CPU-s, server %.1f CPU-s in %.1f s)",
			r.sat.selfCPU, r.sat.serverCPU, r.sat.window.Seconds()))
	}
	if r.sat.bad > 0 {
		r.notes = append(r.notes, fmt.Sprintf("saturation: %d error bounces or unexpected messages", r.sat.bad))
	}
	for _, rate := range o.rates {
		if o.skip["rates"] {
			break
		}
		log.Printf("%s: fixed rate %d msg/s, %v", name, rate, o.rateWindow)
		x := fixedRate(pid, senders, receivers, rate, time.Second, o.rateWindow)
		log.Printf("%s: %d msg/s: %d sent, %d delivered, %d failed; p99 %v; %.1f µs and %.2f wake-ups per message",
			name, rate, x.sent, x.delivered, x.failures(), x.p99.Round(time.Microsecond), x.usPerMsg(), x.wakesPerMsg())
		if x.syncErr != "" {
			r.notes = append(r.notes, fmt.Sprintf("%d msg/s: fsyncs n/a: %s", rate, x.syncErr))
		}
		r.rates = append(r.rates, x)
	}
	if !o.skip["sat"] || !o.skip["rates"] {
		mm := measure(pid)
		r.rssMsg, r.anonMsg = mm.rssKB, mm.rssAnonKB
	}
	if !o.skip["logins"] {
		log.Printf("%s: logins, %v", name, o.loginWindow)
		r.login = l.logins(pid, o.nSmall, 16, o.loginWindow)
	}
	if r.login.failed > 0 {
		r.notes = append(r.notes, fmt.Sprintf("%d logins failed, first: %v", r.login.failed, r.login.firstErr))
	}
	if !o.skip["upload"] {
		log.Printf("%s: upload, %d MiB", name, o.uploadSize>>20)
		if err := uploadPhase(o, name, pid, l, 2*o.pairs+1, r); err != nil {
			r.err = err
			return r
		}
	}
	if !o.skip["muc"] && !o.skip["muc-fanout"] {
		log.Printf("%s: group chat, %d occupants", name, o.muc.occupants)
		if err := mucPhase(o, name, pid, l, 2*o.pairs+1, r); err != nil {
			r.err = fmt.Errorf("group chat: %w", err)
			return r
		}
	}
	if !o.skip["pep"] {
		log.Printf("%s: PEP, %d contacts", name, o.pep.subscribers)
		if err := pepPhase(o, name, pid, l, o.pepFirst(), r); err != nil {
			r.err = fmt.Errorf("PEP: %w", err)
			return r
		}
	}
	if !o.skip["mam"] {
		log.Printf("%s: account archive, up to %d messages in %v", name, o.mam.fill, o.mam.fillWindow)
		if err := mamPhase(o, name, pid, l, o.mamFirst(), r); err != nil {
			r.err = fmt.Errorf("account archive: %w", err)
			return r
		}
	}
	if o.skip["offline"] {
		log.Printf("%s: done", name)
		return r
	}
	// Last, because it leaves messages in storage. The recipients are
	// accounts nobody logged in during this server run (the logins above
	// used 1..nSmall), spread so that none nears a per-recipient quota.
	first := 2*o.pairs + 1
	if nAcc-o.nSmall >= 100 {
		first = o.nSmall + 1
	}
	var rcpt []string
	for i := first; i <= nAcc; i++ {
		rcpt = append(rcpt, l.prefix+strconv.Itoa(i)+"@"+o.domain)
	}
	time.Sleep(2 * time.Second) // the login phase's sessions end
	log.Printf("%s: offline path, %d senders to %d offline members, %v", name, len(senders)+len(receivers), len(rcpt), o.offWindow)
	// Every logged-in session sends (the pairs' receivers too): with the
	// per-sender cap (offlinePerSender), 100 senders last the window.
	r.off = offline(pid, append(append([]*session{}, senders...), receivers...), o.domain, rcpt, time.Second, o.offWindow)
	if r.off.fsyncErr != "" {
		r.notes = append(r.notes, "offline run: fsyncs not counted: "+r.off.fsyncErr)
	}
	if r.off.capped > 0 {
		r.notes = append(r.notes, fmt.Sprintf("offline run: %d senders reached their cap of %d messages before the window ended (the rate is a lower bound)", r.off.capped, offlinePerSender))
	}
	if r.off.stalled > 0 {
		r.notes = append(r.notes, fmt.Sprintf("offline run: %d senders got no answer to a ping within 10 s", r.off.stalled))
	}
	log.Printf("%s: offline: %.0f msg/s handled, %d bounced, %d syncs", name,
		float64(r.off.stored)/r.off.window.Seconds(), r.off.bounced, r.off.fsyncs)
	log.Printf("%s: done", name)
	return r
}
