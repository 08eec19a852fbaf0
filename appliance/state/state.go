// Package state names the files Hearth keeps in its writable state directory.
//
// On the appliance the directory is /perm/hearth (gokrazy's only writable
// partition); under `make run` it is ./var. Every program derives its paths
// from here so that a backup, a factory reset or a test can find everything
// Hearth owns in one place.
package state

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultDir is the state directory on the device.
const DefaultDir = "/perm/hearth"

// Dir is a state directory.
type Dir string

// Config is the appliance configuration shared by all programs.
func (d Dir) Config() string { return filepath.Join(string(d), "config.json") }

// DB is xmppd's bbolt file. Only xmppd opens it.
func (d Dir) DB() string { return filepath.Join(string(d), "xmppd.db") }

// AdminSocket is xmppd's local admin API (HTTP over a unix socket).
func (d Dir) AdminSocket() string { return filepath.Join(string(d), "admin.sock") }

// TLS holds certificates: the self-signed fallback and, once netconf has one,
// the ACME certificate.
func (d Dir) TLS() string { return filepath.Join(string(d), "tls") }

// Uploads holds files shared through HTTP upload.
func (d Dir) Uploads() string { return filepath.Join(string(d), "uploads") }

// Tor holds the onion service keys and tor's data directory.
func (d Dir) Tor() string { return filepath.Join(string(d), "tor") }

// Update holds the update agent's persisted floors and downloads.
func (d Dir) Update() string { return filepath.Join(string(d), "update") }

// OnionC2S is where xmppd takes the c2s connections tor forwards from the
// onion service. A unix socket rather than a loopback port: no port to
// collide with, and nothing on the network can pretend to be tor.
func (d Dir) OnionC2S() string { return filepath.Join(string(d), "onion-c2s.sock") }

// OnionS2S is where xmppd takes the server-to-server connections tor
// forwards from the onion service's port 5269 (as OnionC2S).
func (d Dir) OnionS2S() string { return filepath.Join(string(d), "onion-s2s.sock") }

// TorSocks is tor's SOCKS5 socket (netconf's tor, onion traffic only),
// through which xmppd reaches .onion domains. Inside Tor(), which is 0700:
// tor refuses a unix socket in a directory others can enter.
func (d Dir) TorSocks() string { return filepath.Join(d.Tor(), "socks.sock") }

// NetconfSocket is netconf's local API (reachability status, reload,
// self-test), reachable only by processes on the box.
func (d Dir) NetconfSocket() string { return filepath.Join(string(d), "netconf.sock") }

// Status holds small JSON status files one program writes and others read
// (netconf's reachability report, the updater's last result).
func (d Dir) Status() string { return filepath.Join(string(d), "status") }

// Clock is the last time this box knew, saved by appliance/clock: the next
// boot raises the battery-less clock to at least this.
func (d Dir) Clock() string { return filepath.Join(string(d), "clock") }

// SetupCode is the one-time code that claims an unset box (setup-ui).
// The image build puts one here (/perm/hearth/setup-code, image.
// PermSetupCodeFile); a box without one makes its own on first start.
func (d Dir) SetupCode() string { return filepath.Join(string(d), "setup-code") }

// ACMEChallengeAddr is the loopback address where netconf answers ACME
// HTTP-01 challenges while one is open; xmppd's web server, which owns
// port 80, forwards /.well-known/acme-challenge/ there.
const ACMEChallengeAddr = "127.0.0.1:8402"

// Ensure creates the directory (0700: it holds keys and password verifiers).
func (d Dir) Ensure() error {
	for _, p := range []string{string(d), d.TLS(), d.Status()} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	return nil
}
