package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/sasl"
)

// fakeServer is a scripted single-connection XMPP server for unit tests;
// the real-peer tests of the same paths are in client_e2e_test.go.
type fakeServer struct {
	ln       net.Listener
	tlsCfg   *tls.Config
	password string
	errc     chan error
}

func testCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func startFake(t *testing.T, password string, directTLS bool) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, password: password, errc: make(chan error, 1),
		tlsCfg: &tls.Config{Certificates: []tls.Certificate{testCert(t, "example.test")}}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			f.errc <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		f.errc <- f.serve(c, directTLS)
	}()
	return f
}

var attrRe = regexp.MustCompile(`>([^<]*)<`)

func (f *fakeServer) serve(c net.Conn, directTLS bool) error {
	if directTLS {
		c = tls.Server(c, f.tlsCfg)
	}
	sc := newScanner(bufio.NewReader(c))
	open := func(features string) error {
		sc.depth = 0 // a stream restart
		k, _, err := sc.next()
		if err != nil || k != kindHeader {
			return fmt.Errorf("want header: %v", err)
		}
		_, err = fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.test' version='1.0'><stream:features>%s</stream:features>", features)
		return err
	}
	read := func() ([]byte, error) {
		_, b, err := sc.next()
		return append([]byte(nil), b...), err
	}
	if !directTLS {
		if err := open("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"); err != nil {
			return err
		}
		if b, err := read(); err != nil || !bytes.HasPrefix(b, []byte("<starttls")) {
			return fmt.Errorf("want starttls, got %q %v", b, err)
		}
		fmt.Fprint(c, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		c = tls.Server(c, f.tlsCfg)
		sc = newScanner(bufio.NewReader(c))
	}
	if err := open("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms>"); err != nil {
		return err
	}
	b, err := read()
	if err != nil || !bytes.Contains(b, []byte("mechanism='SCRAM-SHA-256'")) {
		return fmt.Errorf("want SCRAM-SHA-256 auth, got %q %v", b, err)
	}
	// The SCRAM side is the server's own (xmppd/sasl).
	salt := []byte("0123456789abcdef")
	keys, err := sasl.Derive(sha256.New, f.password, salt, sasl.Iterations)
	if err != nil {
		return err
	}
	srv := &sasl.Server{Prep: func(s string) (string, error) { return s, nil }, SaltKey: []byte("k"),
		Lookup: func(string) (*sasl.Credentials, error) {
			return &sasl.Credentials{Salt: salt, Iter: sasl.Iterations, SHA256: keys}, nil
		}}
	ex, err := srv.Start(sasl.SHA256, sasl.Binding{}, false)
	if err != nil {
		return err
	}
	cf, _ := base64.StdEncoding.DecodeString(attrRe.FindStringSubmatch(string(b))[1])
	sf, _, err := ex.Next(cf)
	if err != nil {
		return err
	}
	fmt.Fprintf(c, "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</challenge>", base64.StdEncoding.EncodeToString(sf))
	if b, err = read(); err != nil {
		return err
	}
	fin, _ := base64.StdEncoding.DecodeString(attrRe.FindStringSubmatch(string(b))[1])
	v, _, err := ex.Next(fin)
	if err != nil {
		fmt.Fprint(c, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
		return nil
	}
	fmt.Fprintf(c, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</success>", base64.StdEncoding.EncodeToString(v))
	if err := open("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"); err != nil {
		return err
	}
	if b, err = read(); err != nil || !bytes.Contains(b, []byte("<resource>r1</resource>")) {
		return fmt.Errorf("want bind r1, got %q %v", b, err)
	}
	fmt.Fprint(c, "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/r1</jid></bind></iq>")
	// Echo one stanza, then end the stream.
	if b, err = read(); err != nil {
		return err
	}
	c.Write(b)
	fmt.Fprint(c, "</stream:stream>")
	return nil
}

func TestDial(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("directTLS=%v", direct), func(t *testing.T) {
			f := startFake(t, "secret", direct)
			pool := x509.NewCertPool()
			leaf, _ := x509.ParseCertificate(f.tlsCfg.Certificates[0].Certificate[0])
			pool.AddCert(leaf)
			c, err := Dial(context.Background(), Config{Addr: f.ln.Addr().String(), Domain: "example.test",
				User: "alice", Password: "secret", Resource: "r1", DirectTLS: direct,
				TLS: &tls.Config{RootCAs: pool}, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("Dial: %v (server: %v)", err, <-f.errc)
			}
			defer c.Close()
			if c.JID() != "alice@example.test/r1" || c.Mechanism() != ScramSHA256 {
				t.Fatalf("JID %q mechanism %q", c.JID(), c.Mechanism())
			}
			msg := "<message to='bob@example.test'><body>hi &amp; bye</body></message>"
			if err := c.Send([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			got, err := c.ReadStanza()
			if err != nil || string(got) != msg {
				t.Fatalf("ReadStanza = %q, %v", got, err)
			}
			if _, err := c.ReadStanza(); !errors.Is(err, io.EOF) {
				t.Fatalf("after stream end: %v", err)
			}
			if err := <-f.errc; err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
}

func TestDialWrongPassword(t *testing.T) {
	f := startFake(t, "secret", false)
	_, err := Dial(context.Background(), Config{Addr: f.ln.Addr().String(), Domain: "example.test",
		User: "alice", Password: "wrong", TLS: &tls.Config{InsecureSkipVerify: true}, Timeout: 5 * time.Second})
	var xe *Error
	if !errors.As(err, &xe) || xe.Stage != "auth" || xe.Condition != "not-authorized" {
		t.Fatalf("err = %v, want auth not-authorized", err)
	}
}

func TestDialRejectsUnknownCertificate(t *testing.T) {
	f := startFake(t, "secret", false)
	_, err := Dial(context.Background(), Config{Addr: f.ln.Addr().String(), Domain: "example.test",
		User: "alice", Password: "secret", Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("err = %v, want a TLS verification error", err)
	}
}

func TestDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts and says nothing
		c, err := ln.Accept()
		if err == nil {
			time.Sleep(3 * time.Second)
			c.Close()
		}
	}()
	start := time.Now()
	_, err = Dial(context.Background(), Config{Addr: ln.Addr().String(), Domain: "example.test",
		User: "a", Password: "b", Timeout: 300 * time.Millisecond})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v, want a timeout within the limit", err, time.Since(start))
	}
}
