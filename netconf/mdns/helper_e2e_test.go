//go:build e2e

package mdns

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/hearthchat/hearth/netconf/status"
)

// helperEnv selects the responder helper mode: the e2e tests re-run this
// test binary inside a network namespace (ip netns exec) with it set, so
// the responder lives in that namespace from its first thread on.
const helperEnv = "HNC_MDNS_HELPER"

// printer writes each status change, with the name the responder holds
// at that moment, as one JSON line on stdout, which the parent test reads.
type printer struct {
	enc *json.Encoder
	r   *Responder
}

func (p *printer) Set(c status.Check) {
	name := ""
	if p.r != nil {
		name = p.r.Name()
	}
	p.enc.Encode(helperLine{Check: c, Name: name})
}
func (p *printer) Remove(string)       {}
func (p *printer) RemovePrefix(string) {}

// TestHelperResponder is not a test: it is the responder process the e2e
// tests start in a namespace. Config comes from the environment:
// HNC_MDNS_HELPER=1, HNC_MDNS_HOST, HNC_MDNS_PORT, HNC_MDNS_IFACES (comma
// separated), HNC_MDNS_POLL (duration). It runs until SIGTERM.
func TestHelperResponder(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for the e2e tests")
	}
	debugf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "debug: "+format+"\n", args...) }
	port, _ := strconv.Atoi(os.Getenv("HNC_MDNS_PORT"))
	poll, _ := time.ParseDuration(os.Getenv("HNC_MDNS_POLL"))
	var ifaces []string
	if s := os.Getenv("HNC_MDNS_IFACES"); s != "" {
		ifaces = strings.Split(s, ",")
	}
	p := &printer{enc: json.NewEncoder(os.Stdout)}
	r, err := New(Options{Hostname: os.Getenv("HNC_MDNS_HOST"), HTTPPort: port,
		Interfaces: ifaces, PollInterval: poll, Reporter: p})
	if err != nil {
		t.Fatal(err)
	}
	p.r = r
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// queryResult is what TestHelperQuery prints: the reply and who sent it.
type queryResult struct {
	From  string `json:"from"`
	Reply []byte `json:"reply"`
	Query uint16 `json:"query_id"`
	Error string `json:"error,omitempty"`
}

// TestHelperQuery is not a test: it is a plain, one-shot DNS resolver the
// e2e tests run in the peer namespace. It asks HNC_MDNS_QNAME (type
// HNC_MDNS_QTYPE) from a random port, either to the mDNS group on
// HNC_MDNS_IFACE (HNC_MDNS_TO=group4 or group6) or straight to an
// address (HNC_MDNS_TO=10.77.0.11:5353, through miekg/dns's client), and
// prints the reply as JSON.
func TestHelperQuery(t *testing.T) {
	if os.Getenv(helperEnv) != "query" {
		t.Skip("helper process for the e2e tests")
	}
	q := new(dns.Msg)
	q.SetQuestion(os.Getenv("HNC_MDNS_QNAME"), dns.StringToType[os.Getenv("HNC_MDNS_QTYPE")])
	res := queryResult{Query: q.Id}
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	fail := func(err error) { res.Error = err.Error() }

	to := os.Getenv("HNC_MDNS_TO")
	if to != "group4" && to != "group6" {
		c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
		r, _, err := c.Exchange(q, to)
		if err != nil {
			fail(err)
			return
		}
		res.From = to
		res.Reply, _ = r.Pack()
		return
	}
	ifi, err := net.InterfaceByName(os.Getenv("HNC_MDNS_IFACE"))
	if err != nil {
		fail(err)
		return
	}
	b, err := q.Pack()
	if err != nil {
		fail(err)
		return
	}
	// An unconnected socket: the answer comes from the box's own address,
	// not from the group the query went to.
	var pc net.PacketConn
	var dst net.Addr
	if to == "group4" {
		c, err := net.ListenPacket("udp4", ":0")
		if err != nil {
			fail(err)
			return
		}
		p := ipv4.NewPacketConn(c)
		p.SetMulticastInterface(ifi)
		pc, dst = c, &net.UDPAddr{IP: net.ParseIP("224.0.0.251"), Port: 5353}
	} else {
		c, err := net.ListenPacket("udp6", ":0")
		if err != nil {
			fail(err)
			return
		}
		p := ipv6.NewPacketConn(c)
		p.SetMulticastInterface(ifi)
		pc, dst = c, &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353, Zone: ifi.Name}
	}
	defer pc.Close()
	if _, err := pc.WriteTo(b, dst); err != nil {
		fail(err)
		return
	}
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 9000)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		fail(err)
		return
	}
	res.From, res.Reply = from.String(), buf[:n]
}
