package ws_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/ws"
)

// masked is a client text frame (fixed key).
func masked(s string) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := []byte{0x81, 0x80 | byte(len(s))}
	b = append(b, key[:]...)
	for i := 0; i < len(s); i++ {
		b = append(b, s[i]^key[i&3])
	}
	return b
}

// TestHandshake: RFC 6455 §4.2's accept key (the RFC's own example), and
// a client that sends its first frame in the same write as the upgrade
// request (the bytes the HTTP server read past the request are not lost).
func TestHandshake(t *testing.T) {
	d := start(t, nil)
	c, err := net.DialTimeout("tcp", d.Web.Addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='" + xmpptest.Domain + "' version='1.0'/>"
	req := "GET " + ws.Path + " HTTP/1.1\r\nHost: " + d.Web.Addr.String() + "\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
	if _, err := c.Write(append([]byte(req), masked(open)...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		resp.Header.Get("Sec-WebSocket-Protocol") != "xmpp" || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	// The server's <open/> comes back as an unmasked text frame.
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	if h[0] != 0x81 || h[1]&0x80 != 0 || n >= 126 {
		t.Fatalf("frame header % x", h)
	}
	b := make([]byte, n)
	io.ReadFull(br, b)
	if !strings.HasPrefix(string(b), "<open ") {
		t.Fatalf("first message %q", b)
	}

	// Handshakes refused before any upgrade.
	for _, c := range []struct {
		name, hdr string
		want      int
	}{
		{"no key", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", http.StatusBadRequest},
		{"short key", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAA\r\n", http.StatusBadRequest},
		{"version 8", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", http.StatusUpgradeRequired},
		{"no upgrade", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", http.StatusUpgradeRequired},
	} {
		conn, err := net.DialTimeout("tcp", d.Web.Addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nSec-WebSocket-Protocol: xmpp\r\n%s\r\n", ws.Path, d.Web.Addr, c.hdr)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil || resp.StatusCode != c.want {
			t.Errorf("%s: %v %v, want %d", c.name, resp, err, c.want)
		}
	}
}
