package s2s

// A tiny SOCKS5 server (RFC 1928, CONNECT without authentication) for the
// onion tests: it records what each client asked for and hands the
// connection to the test, standing in for tor.

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// SOCKSRequest is one CONNECT a client made.
type SOCKSRequest struct {
	// AddrType is the request's ATYP: 1 IPv4, 3 domain name, 4 IPv6.
	AddrType byte
	Host     string
	Port     int
}

// SOCKSReplyError, returned by a test's forward function, is the reply
// code the client gets (tor's extended ones included).
type SOCKSReplyError byte

func (e SOCKSReplyError) Error() string { return "SOCKS reply " + strconv.Itoa(int(e)) }

// TestSOCKS is a SOCKS5 server on loopback.
type TestSOCKS struct {
	Addr string
	mu   sync.Mutex
	reqs []SOCKSRequest
}

// Requests are the CONNECTs so far.
func (s *TestSOCKS) Requests() []SOCKSRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SOCKSRequest(nil), s.reqs...)
}

// StartSOCKS serves on a loopback port until the test ends; forward
// connects a request to where the test wants it (an error is answered
// with reply 0x04, host unreachable).
func StartSOCKS(t testing.TB, forward func(r SOCKSRequest) (net.Conn, error)) *TestSOCKS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeSOCKS(t, ln, forward)
}

// ServeSOCKS serves on ln (a unix socket where tor's would be) until the
// test ends.
func ServeSOCKS(t testing.TB, ln net.Listener, forward func(r SOCKSRequest) (net.Conn, error)) *TestSOCKS {
	s := &TestSOCKS{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := s.serve(c, forward); err != nil {
					t.Logf("test SOCKS: %v", err)
				}
			}()
		}
	}()
	return s
}

func (s *TestSOCKS) serve(c net.Conn, forward func(SOCKSRequest) (net.Conn, error)) error {
	b := make([]byte, 262)
	if _, err := io.ReadFull(c, b[:2]); err != nil || b[0] != 5 {
		return errors.New("not SOCKS5")
	}
	if _, err := io.ReadFull(c, b[:b[1]]); err != nil {
		return err
	}
	c.Write([]byte{5, 0}) // no authentication
	if _, err := io.ReadFull(c, b[:4]); err != nil || b[0] != 5 || b[1] != 1 {
		return errors.New("not a CONNECT")
	}
	r := SOCKSRequest{AddrType: b[3]}
	switch r.AddrType {
	case 1, 4:
		n := 4
		if r.AddrType == 4 {
			n = 16
		}
		if _, err := io.ReadFull(c, b[:n]); err != nil {
			return err
		}
		r.Host = net.IP(append([]byte(nil), b[:n]...)).String()
	case 3:
		if _, err := io.ReadFull(c, b[:1]); err != nil {
			return err
		}
		n := int(b[0])
		if _, err := io.ReadFull(c, b[:n]); err != nil {
			return err
		}
		r.Host = string(b[:n])
	default:
		return errors.New("address type " + strconv.Itoa(int(r.AddrType)))
	}
	if _, err := io.ReadFull(c, b[:2]); err != nil {
		return err
	}
	r.Port = int(binary.BigEndian.Uint16(b[:2]))
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	up, err := forward(r)
	if err != nil {
		code := byte(4)
		var re SOCKSReplyError
		if errors.As(err, &re) {
			code = byte(re)
		}
		c.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
		return err
	}
	defer up.Close()
	if _, err := c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			up.Close()
		}
		close(done)
	}()
	io.Copy(c, up)
	c.Close()
	<-done
	return nil
}
