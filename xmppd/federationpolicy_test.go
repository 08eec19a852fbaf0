package xmppd

import (
	"fmt"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
)

// TestFedPolicyAsConfig: the s2s policy's sets answer as
// config.Federation.Allows does, for lists with odd entries (case,
// spaces, trailing dots, empty ones, a leading dot) and domains with and
// without them.
func TestFedPolicyAsConfig(t *testing.T) {
	lists := [][]string{nil, {}, {""}, {"b.test"}, {"B.Test."}, {" b.test "}, {"test"}, {".b.test"}, {"x.b.test", "c.test"}, {"a.b.test"}}
	domains := []string{"", "b.test", "B.TEST.", "x.b.test", "a.b.test", "xb.test", "test", "c.test", "a..b.test", ".b.test", "b.test.."}
	n := 0
	for _, off := range []bool{false, true} {
		for _, block := range lists {
			for _, allow := range lists {
				f := config.Federation{Off: off, Block: block, Allow: allow}
				p := compilePolicy(f)
				for _, d := range domains {
					n++
					if got, want := p.allows(d), f.Allows(d); got != want {
						t.Errorf("%+v: %q: %v, Allows says %v", f, d, got, want)
					}
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d cases", n)
	}
}

func BenchmarkFedPolicy200(b *testing.B) {
	var f config.Federation
	for i := range 200 {
		f.Block = append(f.Block, fmt.Sprintf("spam%d.example", i))
	}
	p := compilePolicy(f)
	b.Run("sets", func(b *testing.B) {
		for b.Loop() {
			p.allows("muc.conversations.im")
		}
	})
	b.Run("config", func(b *testing.B) {
		for b.Loop() {
			f.Allows("muc.conversations.im")
		}
	})
}
