package idle

// Parkable is a connection of another transport that carries its bytes
// over a TCP connection the poller can wait on: XMPP over WebSocket
// (xmppd/ws) reads its frames from Idle in non-blocking mode and returns
// ErrWouldBlock between any two bytes, so c2s parks it like a TCP session.
// Idle returns nil when the connection cannot be parked (no descriptor,
// or TLS that is not over a Conn); the caller then reads blocking.
type Parkable interface {
	Idle() *Conn
}
