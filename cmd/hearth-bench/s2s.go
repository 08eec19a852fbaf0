package main

// The federation phase (issue 14, "Benchmark"): messages per second across
// server-to-server links, hearth → prosody with prosody → prosody as the
// anchor and hearth → hearth, and the memory one more remote domain costs
// a server once its links are idle, hearth beside prosody. Four servers
// of its own, each on loopback with its own domain under s2s.test: h1 and
// h2 (xmppd), p1 and p2 (Debian's prosody). p2 also hosts the "farm"
// domains f0…fN that the memory measurement federates with. Names resolve
// through a DNS server in this process (miekg/dns on 127.0.0.1) that
// answers only for s2s.test: xmppd asks it (-s2s-dns), prosody's
// libunbound forwards to it, nothing leaves the machine. Certificates come
// from a CA made for the run, so every link authenticates by certificate.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

type s2sOptions struct {
	pairs, inflight int
	warm, window    time.Duration
	// domains is how many remote domains the idle-link measurement
	// federates with.
	domains int
}

type s2sPair struct {
	name string
	sat  satResult
	// sent by the senders' server, CPU of the receiving one over the
	// same window
	recvCPU float64
	// sync calls (fsync family, perf) of each server over about the
	// counted window; -1: not counted (syncErr says why)
	sendSyncs, recvSyncs int64
	syncErr              string
	err                  error
}

type s2sIdle struct {
	name               string
	n                  int   // remote domains linked
	anon0, anon1       int64 // RssAnon KiB with one remote domain linked, then n more
	rss0, rss1         int64
	settled0, settled1 bool
	err                error
}

type s2sResult struct {
	pairs []s2sPair
	idle  []s2sIdle
	notes []string
}

const s2sZone = "s2s.test"

// s2sDNS answers SRV _xmpp-server._tcp.DOMAIN with a port on host.s2s.test
// and host.s2s.test with 127.0.0.1; everything else does not exist.
type s2sDNS struct {
	mu    sync.Mutex
	ports map[string]int // domain → s2s port
	addr  string
	srv   []*dns.Server
}

func startS2SDNS() (*s2sDNS, error) {
	z := &s2sDNS{ports: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, err
	}
	z.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(z.serve)
	z.srv = []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}}
	for _, s := range z.srv {
		go s.ActivateAndServe()
	}
	return z, nil
}

func (z *s2sDNS) close() {
	for _, s := range z.srv {
		s.Shutdown()
	}
}

func (z *s2sDNS) set(domain string, port int) {
	z.mu.Lock()
	z.ports[domain] = port
	z.mu.Unlock()
}

func (z *s2sDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	host := "host." + s2sZone
	z.mu.Lock()
	defer z.mu.Unlock()
	switch {
	case name == host:
		if q.Qtype == dns.TypeA {
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		}
	case strings.HasPrefix(name, "_xmpp-server._tcp.") && z.ports[strings.TrimPrefix(name, "_xmpp-server._tcp.")] > 0:
		if q.Qtype == dns.TypeSRV {
			hdr.Rrtype = dns.TypeSRV
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr, Port: uint16(z.ports[strings.TrimPrefix(name, "_xmpp-server._tcp.")]), Target: host + "."})
		}
	case z.ports[name] > 0:
		// the domain exists (no address: the SRV record says where)
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// s2sCA is the run's CA: it issues each server's certificate.
type s2sCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newS2SCA() (*s2sCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hearth-bench s2s CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &s2sCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issue returns a certificate (for servers and clients: s2s links present
// it both ways) naming names, and its key.
func (ca *s2sCA) issue(names ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// s2sServer is one server of the phase, with the loader for its accounts.
type s2sServer struct {
	*server
	domain string
	l      *loader
}

func (o *options) s2sHearth(root, domain, dnsAddr, caFile string, ca *s2sCA, accounts int) (*s2sServer, error) {
	dir := filepath.Join(root, domain)
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(state, "tls"), 0o700); err != nil {
		return nil, err
	}
	cert, key, err := ca.issue(domain, "groups."+domain, "upload."+domain)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(state, "tls", "cert.pem"), cert, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(state, "tls", "key.pem"), key, 0o600); err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	s := &server{name: "hearth " + domain, dir: dir, port: ports[0], logPath: filepath.Join(dir, "server.log")}
	s.argv = pinned(o.serverCPU, o.xmppd, "-state", state, "-domain", domain,
		"-c2s", fmt.Sprintf("127.0.0.1:%d", ports[0]), "-c2s-tls", fmt.Sprintf("127.0.0.1:%d", ports[1]), "-c2s-onion", "none",
		"-no-shaping", "-web", "none", "-web-tls", "none", "-turn", "none", "-proxy65", "none",
		"-s2s", fmt.Sprintf("127.0.0.1:%d", ports[2]), "-s2s-dns", dnsAddr, "-s2s-ca", caFile, "-s2s-allow-local")
	x := &s2sServer{server: s, domain: domain, l: s2sLoader(s, domain)}
	out, err := exec.Command(o.xmppd, "-state", state, "useradd-bulk", x.l.prefix, fmt.Sprint(accounts), x.l.password).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: useradd-bulk: %w: %s", domain, err, out)
	}
	return x, nil
}

// s2sProsody is prosody for domain (accounts registered in band), also
// hosting farm (more domains; their s2s links are what the idle-link
// measurement counts).
func (o *options) s2sProsody(root, domain string, farm []string, dnsAddr, caFile string, ca *s2sCA) (*s2sServer, int, error) {
	dir := filepath.Join(root, domain)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, 0, err
	}
	cert, key, err := ca.issue(append([]string{domain}, farm...)...)
	if err != nil {
		return nil, 0, err
	}
	certF, keyF := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certF, cert, 0o600); err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(keyF, key, 0o600); err != nil {
		return nil, 0, err
	}
	c2s, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	s2sPort, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	_, dnsPort, _ := net.SplitHostPort(dnsAddr)
	var hosts strings.Builder
	for _, d := range append([]string{domain}, farm...) {
		fmt.Fprintf(&hosts, "VirtualHost %q\n", d)
	}
	// As bench/prosody.cfg.lua for what both sides share (TLS required,
	// SCRAM-SHA-256 hashed with 4096 rounds, throttles lifted), plus s2s
	// with TLS required both ways, peers' certificates checked against
	// the run's CA, and names resolved through the phase's DNS only.
	conf := fmt.Sprintf(`-- written by hearth-bench's s2s phase
run_as_root = true
daemonize = false
pidfile = %[1]q
data_path = %[2]q
log = { warn = %[3]q }
network_backend = "epoll"
interfaces = { "127.0.0.1" }
c2s_ports = { %[4]d }
c2s_direct_tls_ports = { }
s2s_ports = { %[5]d }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = 4096
storage = "internal"
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "register" }
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = 1000000
registration_throttle_period = 1
c2s_timeout = 600
ssl = { certificate = %[6]q; key = %[7]q; cafile = %[8]q; }
unbound = { resolvconf = false, hoststxt = false, forward = "127.0.0.1@%[9]s",
	options = { ["do-not-query-localhost:"] = "no", ["local-zone:"] = "test. transparent" } }
%[10]s`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), filepath.Join(dir, "prosody.log"),
		c2s, s2sPort, certF, keyF, caFile, dnsPort, hosts.String())
	cfg := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, 0, err
	}
	s := &server{name: "prosody " + domain, dir: dir, port: c2s, logPath: filepath.Join(dir, "server.log")}
	s.argv = pinned(o.serverCPU, "prosody", "--config", cfg, "-F")
	return &s2sServer{server: s, domain: domain, l: s2sLoader(s, domain)}, s2sPort, nil
}

func s2sLoader(s *server, domain string) *loader {
	pw := make([]byte, 12)
	rand.Read(pw)
	return &loader{addr: s.addr(), domain: domain, prefix: "u", password: "bench-" + hex.EncodeToString(pw),
		tls: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
}

// s2sPort reads the -s2s port back from xmppd's command line.
func (x *s2sServer) s2sPort() int {
	for i, a := range x.argv {
		if a == "-s2s" && i+1 < len(x.argv) {
			_, p, _ := net.SplitHostPort(x.argv[i+1])
			var n int
			fmt.Sscan(p, &n)
			return n
		}
	}
	return 0
}

func runS2S(o *options) (res *s2sResult) {
	res = &s2sResult{}
	fail := func(err error) *s2sResult {
		res.notes = append(res.notes, "the phase stopped: "+err.Error())
		log.Printf("s2s: %v", err)
		return res
	}
	prosodyOK := true
	if _, err := exec.LookPath("prosody"); err != nil {
		prosodyOK = false
		res.notes = append(res.notes, "prosody is not installed: the pairs with prosody are left out")
	} else if out, err := exec.Command("lua5.4", "-e", `require "lunbound"`).CombinedOutput(); err != nil {
		// Without it prosody would ask the system's resolver for the
		// phase's names: they would leave the machine.
		prosodyOK = false
		res.notes = append(res.notes, "prosody's lua-unbound is missing (make test-deps): the pairs with prosody are left out: "+strings.TrimSpace(string(out)))
	}
	root := filepath.Join(o.work, "s2s")
	z, err := startS2SDNS()
	if err != nil {
		return fail(err)
	}
	defer z.close()
	ca, err := newS2SCA()
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fail(err)
	}
	caFile := filepath.Join(root, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		return fail(err)
	}
	so := o.s2s
	var farm []string
	for i := 0; i <= so.domains; i++ {
		farm = append(farm, fmt.Sprintf("f%d.%s", i, s2sZone))
	}
	var all []*s2sServer
	defer func() {
		for _, x := range all {
			x.stop()
		}
	}()
	start := func(x *s2sServer, s2sPort int, domains ...string) error {
		all = append(all, x)
		if err := x.start(); err != nil {
			return fmt.Errorf("%s: start: %w", x.name, err)
		}
		if _, err := x.waitReady(x.domain, 60*time.Second); err != nil {
			log.Printf("%s logs:\n%s", x.name, x.tailLog())
			return err
		}
		for _, d := range domains {
			z.set(d, s2sPort)
		}
		return nil
	}
	n := so.pairs + 1 // the last account measures the idle links
	h1, err := o.s2sHearth(root, "h1."+s2sZone, z.addr, caFile, ca, n)
	if err != nil {
		return fail(err)
	}
	h2, err := o.s2sHearth(root, "h2."+s2sZone, z.addr, caFile, ca, n)
	if err != nil {
		return fail(err)
	}
	for _, h := range []*s2sServer{h1, h2} {
		if err := start(h, h.s2sPort(), h.domain, "groups."+h.domain, "upload."+h.domain); err != nil {
			return fail(err)
		}
	}
	var p1, p2 *s2sServer
	if prosodyOK {
		var port1, port2 int
		if p1, port1, err = o.s2sProsody(root, "p1."+s2sZone, nil, z.addr, caFile, ca); err != nil {
			return fail(err)
		}
		if p2, port2, err = o.s2sProsody(root, "p2."+s2sZone, farm, z.addr, caFile, ca); err != nil {
			return fail(err)
		}
		if err := start(p1, port1, p1.domain); err != nil {
			return fail(err)
		}
		if err := start(p2, port2, append([]string{p2.domain}, farm...)...); err != nil {
			return fail(err)
		}
	}
	sessions := map[*s2sServer][]*session{}
	defer func() {
		for _, ss := range sessions {
			closeAll(ss)
		}
	}()
	for _, x := range []*s2sServer{h1, h2, p1, p2} {
		if x == nil {
			continue
		}
		ss, _, err := x.l.openSessions(1, n+1, 8, strings.HasPrefix(x.name, "prosody"), 2*time.Minute)
		if err != nil {
			return fail(fmt.Errorf("%s: logins: %w", x.name, err))
		}
		sessions[x] = ss
	}

	// Idle links first, while the servers hold nothing else.
	if prosodyOK {
		for _, x := range []*s2sServer{h1, p1} {
			r := s2sIdleLinks(x, sessions[x][n-1], farm)
			res.idle = append(res.idle, r)
			if r.err != nil {
				log.Printf("s2s: %s: idle links: %v", x.name, r.err)
			}
		}
	} else {
		res.notes = append(res.notes, "the idle-link memory needs prosody (the farm of remote domains)")
	}

	type pair struct {
		name     string
		from, to *s2sServer
	}
	pairs := []pair{{"hearth → hearth", h1, h2}}
	if prosodyOK {
		pairs = []pair{{"hearth → prosody", h1, p2}, {"prosody → prosody", p1, p2}, {"hearth → hearth", h1, h2}}
	}
	for _, p := range pairs {
		res.pairs = append(res.pairs, s2sThroughput(p.name, p.from, p.to, sessions[p.from][:so.pairs], sessions[p.to][:so.pairs], so))
	}
	return res
}

// s2sThroughput saturates the link from a to b: one message in flight
// per pair at most so.inflight, sender i on a to receiver i on b. A first
// message each way is awaited before the clock starts (the link's
// negotiation is not part of the figure).
func s2sThroughput(name string, a, b *s2sServer, senders, receivers []*session, so s2sOptions) s2sPair {
	r := s2sPair{name: name}
	log.Printf("s2s: %s: %d pairs, %d in flight each, %v", name, len(senders), so.inflight, so.window)
	got := make(chan struct{}, 1)
	f := func([]byte) {
		select {
		case got <- struct{}{}:
		default:
		}
	}
	receivers[0].onMsg.Store(&f)
	if err := senders[0].c.Send(appendMsg(nil, receivers[0].c.JID(), -1)); err != nil {
		r.err = err
		return r
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		receivers[0].onMsg.Store(nil)
		r.err = fmt.Errorf("%s: the first message did not arrive within 30 s (logs in %s and %s)", name, a.dir, b.dir)
		log.Print(r.err)
		return r
	}
	receivers[0].onMsg.Store(nil)
	b0 := measure(b.pid())
	// Syncs of both ends over the counted window (started after the same
	// warm-up as saturate's window): what each side commits per message.
	r.sendSyncs, r.recvSyncs = -1, -1
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, x := range []struct {
		pid int
		n   *int64
	}{{a.pid(), &r.sendSyncs}, {b.pid(), &r.recvSyncs}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(so.warm)
			n, err := countSyncs([]int{x.pid}, so.window)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.syncErr = err.Error()
				return
			}
			*x.n = n
		}()
	}
	r.sat = saturate(a.pid(), senders, receivers, so.inflight, so.warm, so.window)
	wg.Wait()
	b1 := measure(b.pid())
	// The receiver's CPU over the whole run (warm-up and drain too):
	// per message delivered in the window it is an upper bound.
	r.recvCPU = float64(b1.cpuNS-b0.cpuNS) / 1e9
	log.Printf("s2s: %s: %.0f msg/s (%d bad)", name, float64(r.sat.delivered)/r.sat.window.Seconds(), r.sat.bad)
	return r
}

// s2sIdleLinks measures what x's memory grows by when it federates with
// len(farm)-1 more remote domains whose links then stay idle: a ping to
// each domain (the answer comes back over the farm's own link to x, so
// each domain is one connection each way, as between two servers that
// do not share streams).
func s2sIdleLinks(x *s2sServer, s *session, farm []string) s2sIdle {
	r := s2sIdle{name: strings.Fields(x.name)[0], n: len(farm) - 1}
	ping := func(d string) error {
		_, err := s.iq("get", d, "<ping xmlns='urn:xmpp:ping'/>", 60*time.Second)
		return err
	}
	// One domain first: what the first link costs once (TLS contexts,
	// resolver, code paths) is not per link.
	if r.err = ping(farm[0]); r.err != nil {
		return r
	}
	r.anon0, r.rss0, _, r.settled0 = settledAnon(x.pid(), 30*time.Second)
	log.Printf("s2s: %s: linking %d remote domains", x.name, r.n)
	// One at a time: a session waits for one iq answer at a time
	// (session.iq).
	failed := 0
	var errs error
	for _, d := range farm[1:] {
		if err := ping(d); err != nil {
			failed++
			errs = errors.Join(errs, err)
		}
	}
	if failed > 0 {
		r.err = fmt.Errorf("%d of %d pings failed: %w", failed, r.n, errs)
		return r
	}
	r.anon1, r.rss1, _, r.settled1 = settledAnon(x.pid(), 30*time.Second)
	return r
}

func s2sSection(b *strings.Builder, o *options, res *s2sResult) {
	if res == nil {
		return
	}
	so := o.s2s
	fmt.Fprintf(b, "## Federation (s2s)\n\nFour servers on loopback, each with its own domain (h1, h2: xmppd; p1, p2: prosody, p2 also hosting the remote domains f0…f%d), names through the run's own DNS, certificates from the run's CA (every link authenticates by certificate). "+
		"Throughput: %d pairs, sender i on the first server to receiver i on the second, at most %d messages in flight per pair, counted over %v after %v of warm-up (the link is up before: a first message is awaited). "+
		"Idle links: one member pings f0, then f1…f%d one after the other; each answer comes back on the remote server's own link, so each remote domain is one connection each way. RssAnon settled (5 samples a second apart within 0.5%%) before and after.\n\n",
		so.domains, so.pairs, so.inflight, so.window, so.warm, so.domains)
	b.WriteString("| pair | delivered | window s | msg/s | bad | sender CPU µs/msg | receiver CPU µs/msg (whole run) | sender / receiver syncs per msg |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range res.pairs {
		if p.err != nil {
			fmt.Fprintf(b, "| %s | failed: %s | | | | | | |\n", p.name, strings.ReplaceAll(p.err.Error(), "|", "/"))
			continue
		}
		d := float64(max(p.sat.delivered, 1))
		syncs := "n/a"
		if p.sendSyncs >= 0 && p.recvSyncs >= 0 {
			syncs = fmt.Sprintf("%.2f / %.2f", float64(p.sendSyncs)/d, float64(p.recvSyncs)/d)
		}
		fmt.Fprintf(b, "| %s | %d | %.1f | **%.0f** | %d | %.1f | %.1f | %s |\n", p.name, p.sat.delivered, p.sat.window.Seconds(),
			float64(p.sat.delivered)/p.sat.window.Seconds(), p.sat.bad, p.sat.serverCPU*1e6/d, p.recvCPU*1e6/d, syncs)
	}
	for _, p := range res.pairs {
		if p.syncErr != "" {
			fmt.Fprintf(b, "\nSyncs not counted for %s: %s\n", p.name, p.syncErr)
		}
	}
	b.WriteString("\n| server | remote domains | RssAnon before KiB | after KiB | **RssAnon per remote domain KiB** | VmRSS per remote domain KiB | settled |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range res.idle {
		if r.err != nil {
			fmt.Fprintf(b, "| %s | failed: %s | | | | | |\n", r.name, strings.ReplaceAll(r.err.Error(), "|", "/"))
			continue
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d | **%.1f** | %.1f | %v/%v |\n", r.name, r.n, r.anon0, r.anon1,
			float64(r.anon1-r.anon0)/float64(r.n), float64(r.rss1-r.rss0)/float64(r.n), r.settled0, r.settled1)
	}
	for _, n := range res.notes {
		fmt.Fprintf(b, "\n- %s", n)
	}
	b.WriteString("\n\n")
}

// failed reports whether anything in the phase failed.
func (r *s2sResult) failed() bool {
	for _, p := range r.pairs {
		if p.err != nil {
			return true
		}
	}
	for _, x := range r.idle {
		if x.err != nil {
			return true
		}
	}
	return len(r.pairs) == 0
}
