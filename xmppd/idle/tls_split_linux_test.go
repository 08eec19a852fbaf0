package idle

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"idle.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// holdConn passes writes through until hold is set; then it keeps them,
// so the test can put a TLS record on the wire piece by piece.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	held []byte
}

func (h *holdConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		h.held = append(h.held, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

// unread is how many bytes wait in the socket's receive queue (FIONREAD).
func unread(t *testing.T, c *Conn) int {
	var n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(c.FD()), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("FIONREAD: %v", e)
	}
	return int(n)
}

// Idle parking rests on crypto/tls keeping a partly received record when
// the connection under it returns a temporary error: a reader that parks
// between two halves of a record must get the whole record once the rest
// arrives. If a Go release starts treating ErrWouldBlock as fatal, or
// drops the partial record, this fails (instead of members' messages
// silently breaking).
func TestTLSRecordSplitAcrossPark(t *testing.T) {
	p, ln := setup(t)
	w, cl := pair(t, ln)
	defer w.Close()
	defer cl.Close()
	cert := testCert(t)
	srv := tls.Server(w, &tls.Config{Certificates: []tls.Certificate{cert}})
	hc := &holdConn{Conn: cl}
	cli := tls.Client(hc, &tls.Config{InsecureSkipVerify: true, ServerName: "idle.test"})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	// TLS 1.3 servers may send session tickets after the handshake; let
	// the client read them so that nothing else is in flight.
	go func() {
		b := make([]byte, 64)
		for {
			if _, err := cli.Read(b); err != nil {
				return
			}
		}
	}()

	msg := []byte("<message to='a@b'><body>one whole record, split three ways</body></message>")
	hc.mu.Lock()
	hc.hold = true
	hc.mu.Unlock()
	if _, err := cli.Write(msg); err != nil {
		t.Fatal(err)
	}
	hc.mu.Lock()
	rec := hc.held
	hc.mu.Unlock()
	if len(rec) < 5+len(msg) {
		t.Fatalf("held %d bytes, want one record of at least %d", len(rec), 5+len(msg))
	}
	// Three pieces: inside the 5-byte record header, in the middle of the
	// payload, and the rest.
	pieces := [][]byte{rec[:3], rec[3 : len(rec)/2], rec[len(rec)/2:]}

	w.SetNonblocking(true)
	buf := make([]byte, 1024)
	if n, err := srv.Read(buf); err != ErrWouldBlock {
		t.Fatalf("read with nothing sent: %d, %v; want ErrWouldBlock", n, err)
	}
	for i, piece := range pieces {
		woke := make(chan struct{})
		if err := p.Park(w, func() { close(woke) }); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Write(piece); err != nil {
			t.Fatal(err)
		}
		if !wokeWithin(woke, 5*time.Second) {
			t.Fatalf("piece %d: parked reader not woken", i)
		}
		n, err := srv.Read(buf)
		if i < len(pieces)-1 {
			if err != ErrWouldBlock {
				t.Fatalf("piece %d of %d: read %d bytes, err %v; want ErrWouldBlock (record incomplete)", i+1, len(pieces), n, err)
			}
			// The piece was taken from the socket into crypto/tls's
			// buffer: from now on only TLS remembers it.
			if u := unread(t, w); u != 0 {
				t.Fatalf("piece %d: %d bytes still in the socket, the test did not exercise TLS's buffer", i+1, u)
			}
			continue
		}
		if err != nil {
			t.Fatalf("last piece: %v", err)
		}
		if string(buf[:n]) != string(msg) {
			t.Fatalf("read %q, want %q", buf[:n], msg)
		}
	}
	// And the connection still works both ways after all that.
	hc.mu.Lock()
	hc.hold = false
	hc.mu.Unlock()
	w.SetNonblocking(false)
	if _, err := cli.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	w.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := srv.Read(buf)
	if err != nil || string(buf[:n]) != "again" {
		t.Fatalf("blocking read afterwards: %q, %v", buf[:n], err)
	}
}
