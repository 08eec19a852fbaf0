package web

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/hearthchat/hearth/xmppd/tlsconf"
)

func selfTLS(t *testing.T) *tls.Config {
	dir := t.TempDir()
	c, err := tlsconf.Load(filepath.Join(dir, "tls"), []string{"club.example"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Config()
}
