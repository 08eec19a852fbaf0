package xmppd_test

import (
	"context"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// The health check logs in with xmppd/client, over direct TLS when there
// is such a listener and over STARTTLS otherwise, and fails when no login
// is possible.
func TestHealthLogin(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*xmppd.Options)
	}{
		{"direct TLS", nil},
		{"STARTTLS", func(o *xmppd.Options) { o.C2STLS = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := xmpptest.Start(t, tc.mod)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := 0; i < 2; i++ { // the health account's password is kept
				if err := d.LoginCheck(ctx); err != nil {
					t.Fatalf("check %d: %v", i+1, err)
				}
			}
		})
	}
	t.Run("no login possible", func(t *testing.T) {
		d := xmpptest.Start(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.LoginCheck(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Store.SetPassword(xmppd.HealthUser, "changed behind its back"); err != nil {
			t.Fatal(err)
		}
		if err := d.LoginCheck(ctx); err == nil {
			t.Fatal("health login passed with a wrong password")
		}
	})
}
