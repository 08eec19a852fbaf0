package web

// OwnHost reports whether the box answers to hostport (the Host
// allowlist): the WebSocket endpoint (xmppd/ws) accepts a browser's
// Origin only if it names one of the box's own names.
func (s *Server) OwnHost(hostport string) bool {
	_, ok := s.hosts.allowed(hostport)
	return ok
}
