//go:build e2e

package upload_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/upload"
)

// TestSlixmppUpload: a real client (Debian's python3-slixmpp, its
// xep_0363 plugin) finds upload.<domain> through disco, gets a slot and
// PUTs a 3 MiB photo through the box's web server (over the 1 MiB body
// limit of ordinary routes); a second client downloads it from the URL it
// got in a message, byte-identical.
func TestSlixmppUpload(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp and python3-aiohttp is needed (make test-deps): %v", err)
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		dir = o.State
		o.Web = "127.0.0.1:0"
		o.Dev = true
	})
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(d.C2STLSAddr)
	}
	const size = 3 << 20
	data := make([]byte, size)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "garden-photo.jpg")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "upload.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"),
		"--alice", "alice-pw", "--bob", "bob-pw", "--file", file,
		"--max", strconv.Itoa(upload.DefaultMaxFileSize))
	out, err := cmd.CombinedOutput()
	url := ""
	for _, l := range strings.Split(string(out), "\n") {
		if u, ok := strings.CutPrefix(l, "OK "); ok {
			url = strings.TrimSpace(u)
		}
	}
	if err != nil || url == "" {
		t.Fatalf("slixmpp scenario: %v\n%s", err, out)
	}
	if want := "http://" + d.Web.Addr.String() + upload.Prefix; !strings.HasPrefix(url, want) {
		t.Errorf("URL %s, want it under %s", url, want)
	}
	ents, _ := os.ReadDir(dir.Uploads())
	if len(ents) != 1 {
		t.Errorf("upload directory holds %d entries, want the one file", len(ents))
	}
	u, _ := d.Store.Usage("alice")
	if u[upload.Kind].Bytes != size || u[upload.Kind].Items != 1 {
		t.Errorf("alice's upload usage %+v, want %d bytes in 1 file", u[upload.Kind], size)
	}
}
