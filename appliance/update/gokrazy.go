package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// GokrazySocket is where gokrazy's HTTP API listens. Our image sets
// NoPassword, so this unix socket (root only) is the API's only listener:
// nothing on the network can reach gokrazy's update endpoints.
const GokrazySocket = "/run/gokrazy-http.sock"

// Gokrazy talks to gokrazy's local update API.
type Gokrazy struct {
	Socket string
	client *http.Client
}

func (g *Gokrazy) http() *http.Client {
	if g.client == nil {
		sock := g.Socket
		if sock == "" {
			sock = GokrazySocket
		}
		g.client = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
	}
	return g.client
}

func (g *Gokrazy) do(ctx context.Context, method, path string, body io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://gokrazy"+path, body)
	if err != nil {
		return "", err
	}
	resp, err := g.http().Do(req)
	if err != nil {
		return "", fmt.Errorf("gokrazy %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("gokrazy %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteRoot streams the verified root file system at path to the inactive
// root partition and checks gokrazy's hash of what it wrote against ours.
func (g *Gokrazy) WriteRoot(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("write root: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("write root: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	got, err := g.do(ctx, http.MethodPut, "/update/root", f)
	if err != nil {
		return fmt.Errorf("write root: %w", err)
	}
	if want := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("write root: gokrazy wrote sha256 %s, we sent %s", got, want)
	}
	return nil
}

// Switch makes the inactive root partition the one the next boot uses.
func (g *Gokrazy) Switch(ctx context.Context) error {
	_, err := g.do(ctx, http.MethodPost, "/update/switch", nil)
	return err
}

// Reboot asks gokrazy to stop all services (they get SIGTERM: xmppd sends
// its clients system-shutdown and closes storage) and reboot.
func (g *Gokrazy) Reboot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := g.do(ctx, http.MethodPost, "/reboot", nil)
	return err
}
