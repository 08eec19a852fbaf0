package s2s

// Onion federation: with Tor on, a .onion domain is reached through
// tor's SOCKS5 port, and other servers reach ours through the onion
// service (netconf maps its 5269 to ServeOnion's listener).
//
// The name never reaches a DNS resolver: no SRV lookup (an onion service
// has no DNS; asking for _xmpp-server._tcp.x.onion would tell the
// resolver whom we talk to), no address lookup; the name goes to tor as a
// SOCKS5 domain name (golang.org/x/net/proxy sends a host that is not an
// IP literal as ATYP 3 and resolves nothing). tor's SOCKS port is on the
// box itself (a unix socket, or loopback): dialling it is allowed on this
// path only, the loopback/LAN refusal (refusedIP) still applies to every
// name DNS gives us.
//
// Authentication is unchanged. TLS is still required both ways. An onion
// peer rarely has a certificate a CA issued for its .onion name, so its
// certificate fails the name check and dialback authenticates it. Prosody's
// mod_onions does the same (read for this, not copied): it dials
// name.onion:5269 through tor's SOCKS5 with the name as a domain, looks up
// no SRV, hands the connection to its normal s2s code (STARTTLS as
// configured), and skips the certificate check for .onion hosts so that
// dialback follows; onion Prosody configurations run with
// s2s_secure_auth = false. Dialback to an onion domain is stronger than
// to a DNS name: the connect-back goes through tor to the address, and
// only the holder of the service's key can answer there (the address is
// the key), so no DNS or routing attack can forge it. An onion peer that
// does have a valid certificate for its name uses SASL EXTERNAL like any
// other.
//
// Not done: mapping a DNS domain to an onion address (mod_onions'
// onions_map), and .onion targets in SRV records (mod_onions does not
// follow them either; the SRV lookup would tell the resolver the domain
// anyway). Outbound links to DNS domains do not go through tor.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cretz/bine/torutil"
	"golang.org/x/net/proxy"
)

// Onion configures federation with .onion domains.
type Onion struct {
	// SOCKS is tor's SOCKS5 port: "unix:PATH" (on the box netconf's tor
	// opens state.Dir.TorSocks(), for onion traffic only) or "host:port".
	// "": .onion domains cannot be reached; their stanzas bounce with
	// remote-server-not-found at once.
	SOCKS string
	// DialTimeout bounds one connection through tor, up to the onion
	// service answering (tor fetches its descriptor and builds a
	// rendezvous circuit first: seconds, on a slow Pi tens). Default 60 s.
	DialTimeout time.Duration
	// MaxUnauth caps unauthenticated connections from the onion listener
	// (ServeOnion) all together: they all come from tor, so a per-address
	// cap would be one bucket anyway; 0: 100, -1: no cap.
	MaxUnauth int
}

// OnionBucket is the source every connection from the onion listener is
// counted under (never its address: tor connects from the box itself, and
// nothing arriving over Tor is local).
const OnionBucket = "onion"

// ServeOnion accepts server-to-server connections that tor forwards from
// the onion service's port 5269 (STARTTLS, as Serve). They are counted
// under OnionBucket with their own cap (Onion.MaxUnauth).
func (s *S2S) ServeOnion(ln net.Listener) error { return s.serve(ln, false, OnionBucket) }

// unauthCap is the cap of unauthenticated inbound connections for a source.
func (s *S2S) unauthCap(source string) int {
	if source != OnionBucket {
		return s.cfg.MaxUnauthPerIP
	}
	switch n := s.cfg.Onion.MaxUnauth; {
	case n == 0:
		return 100
	case n < 0:
		return 0
	default:
		return n
	}
}

func (s *S2S) onionDialTimeout() time.Duration {
	if s.cfg.Onion.DialTimeout > 0 {
		return s.cfg.Onion.DialTimeout
	}
	return 60 * time.Second
}

// IsOnion reports whether domain is under .onion (RFC 7686): such names
// go to tor, never to DNS.
func IsOnion(domain string) bool {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	return strings.HasSuffix(d, ".onion")
}

// onionHost is the v3 onion address a .onion domain is served at: the
// domain itself, or for a subdomain (groups.x.onion, a service of an
// onion Hearth) its last two labels, where tor connects either way.
func onionHost(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("s2s: %q is not an onion address", domain)
	}
	id := labels[len(labels)-2]
	if len(id) != 56 {
		return "", fmt.Errorf("s2s: %s is not a v3 onion address (56 characters)", domain)
	}
	if _, err := torutil.PublicKeyFromV3OnionServiceID(id); err != nil {
		return "", fmt.Errorf("s2s: %s is not a valid onion address: %w", domain, err)
	}
	return id + ".onion", nil
}

// dialOnion opens a stream to an onion domain's server through tor.
func (s *S2S) dialOnion(ctx context.Context, local, domain string) (*outConn, error) {
	host, err := onionHost(domain)
	if err != nil {
		// Misspelt: tor would refuse it too (SOCKS reply F6).
		return nil, &errNotFound{err}
	}
	if s.cfg.Onion.SOCKS == "" {
		return nil, notFound("s2s: %s is an onion address and Tor is off on this box", domain)
	}
	t := target{host: host, port: s.cfg.Port}
	addr := net.JoinHostPort(host, strconv.Itoa(t.port))
	// The caller's deadline is sized for a DNS name (DialTimeout +
	// NegotiateTimeout); through tor, the descriptor fetch and the
	// rendezvous come first, and a cold one takes tens of seconds. The
	// onion dial has its own (Onion.DialTimeout); Close still ends it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.onionDialTimeout())
	defer cancel()
	if s.ctx != nil {
		defer context.AfterFunc(s.ctx, cancel)()
	}
	oc, err := s.open(ctx, local, domain, t, func(ctx context.Context) (net.Conn, error) {
		return s.socksDial(ctx, addr)
	})
	if err != nil {
		var nf *errNotFound
		if errors.As(err, &nf) {
			return nil, err
		}
		return nil, fmt.Errorf("s2s: cannot reach %s through tor: %w", domain, err)
	}
	return oc, nil
}

// socksDial connects to addr (an onion host:port) through tor's SOCKS5
// port.
func (s *S2S) socksDial(ctx context.Context, addr string) (net.Conn, error) {
	network, socks := "tcp", s.cfg.Onion.SOCKS
	if p, ok := strings.CutPrefix(socks, "unix:"); ok {
		network, socks = "unix", p
	}
	d, err := proxy.SOCKS5(network, socks, nil, &net.Dialer{})
	if err != nil {
		return nil, fmt.Errorf("tor SOCKS %s: %w", s.cfg.Onion.SOCKS, err)
	}
	c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", addr)
	if err != nil {
		if network == "unix" && errors.Is(err, fs.ErrNotExist) {
			// No socket: tor is not running (Tor is off in the settings,
			// or netconf is not up). Retrying for minutes would only keep
			// the sender waiting.
			return nil, &errNotFound{fmt.Errorf("tor is not running (no SOCKS socket %s)", socks)}
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("tor's SOCKS port %s refused the connection (tor restarting?): %w", s.cfg.Onion.SOCKS, err)
		}
		if code, ok := socksReply(err); ok {
			r := torReplies[code]
			why, refused := r.words, r.refused
			if why == "" {
				why = fmt.Sprintf("reply %#x", code)
			}
			err := fmt.Errorf("tor: %s (SOCKS reply %#x)", why, code)
			if refused {
				return nil, &errNotFound{err}
			}
			return nil, err
		}
		return nil, fmt.Errorf("tor: %w", err)
	}
	return c, nil
}

// torReplies words tor's SOCKS5 replies for onion addresses (tor's
// ExtendedErrors, which netconf asks for: 0xF0-0xF7, and the standard
// ones tor uses), and says which are a refusal retrying will not change
// (bounced at once). The others (the service is offline: no descriptor,
// the introduction or rendezvous failed) are retried for RetryFor like
// any unreachable server: an onion peer on somebody's home box is often
// off for a while.
var torReplies = map[byte]struct {
	words   string
	refused bool
}{
	0x01: {"general failure", false},
	0x02: {"not allowed (the SOCKS port takes onion addresses only)", true},
	0x04: {"the onion service could not be reached", false},
	0x05: {"the onion service refused the connection (nothing on its port 5269)", false},
	0x06: {"no way to the onion service in time (tor not connected to the Tor network?)", false},
	0xF0: {"the onion service is not published (offline or gone)", false},
	0xF1: {"the onion service's descriptor is invalid", false},
	0xF2: {"the onion service's introduction failed", false},
	0xF3: {"the rendezvous with the onion service failed", false},
	0xF4: {"the onion service requires client authorization", true},
	0xF5: {"the onion service rejected our client authorization", true},
	0xF6: {"not a valid onion address", true},
	0xF7: {"the introduction to the onion service timed out", false},
}

// socksReply digs the reply code out of golang.org/x/net/proxy's error,
// which carries it only in words ("unknown error TTL expired", "unknown
// error unknown code: 242").
func socksReply(err error) (byte, bool) {
	msg := err.Error()
	i := strings.LastIndex(msg, "unknown error ")
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len("unknown error "):]
	if n, ok := strings.CutPrefix(rest, "unknown code: "); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 || v > 255 {
			return 0, false
		}
		return byte(v), true
	}
	for code, words := range standardReplies {
		if rest == words {
			return code, true
		}
	}
	return 0, false
}

// standardReplies are x/net's words for RFC 1928's reply codes.
var standardReplies = map[byte]string{
	0x01: "general SOCKS server failure", 0x02: "connection not allowed by ruleset",
	0x03: "network unreachable", 0x04: "host unreachable", 0x05: "connection refused",
	0x06: "TTL expired", 0x07: "command not supported", 0x08: "address type not supported",
}
