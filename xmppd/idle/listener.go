package idle

import "net"

// Listener wraps each accepted connection in a Conn (one that has no
// descriptor is passed on as it is). The web server's HTTPS listener puts
// TLS over it, so that a WebSocket hijacked from it can later read its
// TCP connection non-blocking and park (xmppd/ws): crypto/tls cannot be
// moved onto another connection once it has started. Until switched, a
// Conn reads and writes like the connection it wraps.
type Listener struct {
	net.Listener
}

// Accept accepts the next connection, wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if w := Wrap(c); w != nil {
		return w, nil
	}
	return c, nil
}
