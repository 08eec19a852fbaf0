package update

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
)

// XmppdHealth returns a health gate asking xmppd's admin socket: the check
// passes only if xmppd answers 200 with ok:true and reports version want
// (so an old xmppd still running cannot vouch for a new release).
func XmppdHealth(adminSocket, want string) func(context.Context) error {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", adminSocket)
		},
	}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://xmppd/health", nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("health: %w", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var h struct {
			OK      bool   `json:"ok"`
			Version string `json:"version"`
		}
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("health: %s: %q", resp.Status, b)
		}
		if resp.StatusCode != http.StatusOK || !h.OK {
			return fmt.Errorf("health: %s: %s", resp.Status, b)
		}
		if want != "" && h.Version != want {
			return fmt.Errorf("health: xmppd reports version %q, want %q", h.Version, want)
		}
		return nil
	}
}
