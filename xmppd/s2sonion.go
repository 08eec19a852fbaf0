package xmppd

import (
	"net"
	"os"
	"strings"
)

// listenS2S opens a federation listener: "host:port", or "unix:PATH" for
// the one tor forwards the onion service's port 5269 to (S2SOptions.Onion).
// A unix socket rather than a loopback port, as for c2s: no port to collide
// with, nothing on the network can pretend to be tor, and its connections
// are counted under s2s.OnionBucket, never as 127.0.0.1.
func listenS2S(addr string) (net.Listener, error) {
	p, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	// Left by a killed process; the store's lock means we own it.
	os.Remove(p)
	return net.Listen("unix", p)
}
