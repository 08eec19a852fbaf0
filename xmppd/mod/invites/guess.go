package invites

import (
	"sync"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
)

// Token guessing over XEP-0445: an address that presented MaxBadTokens
// unknown tokens within GuessWindow gets no more lookups until the window
// ends (tokens are 128 random bits, so this is about noise and cost, not
// odds). The web pages limit their lookups the same way (setup-ui).
const (
	MaxBadTokens = 20
	GuessWindow  = 15 * time.Minute
	maxGuessKeys = 4096
)

type guessWindow struct {
	start time.Time
	bad   int
}

type guesses struct {
	mu sync.Mutex
	m  map[string]*guessWindow
}

type guessKey struct{}

func guessesOf(srv *server.Server) *guesses {
	return server.State(srv, guessKey{}, func() *guesses { return &guesses{m: map[string]*guessWindow{}} })
}

// blocked reports whether ip may not look tokens up now.
func (g *guesses) blocked(ip string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.m[ip]
	return w != nil && now.Sub(w.start) < GuessWindow && w.bad >= MaxBadTokens
}

// failed counts a bad token from ip.
func (g *guesses) failed(ip string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.m[ip]
	if w == nil || now.Sub(w.start) >= GuessWindow {
		if w == nil && len(g.m) >= maxGuessKeys {
			for k, v := range g.m {
				if now.Sub(v.start) >= GuessWindow {
					delete(g.m, k)
				}
			}
			if len(g.m) >= maxGuessKeys {
				return // a flood of addresses: the table stays bounded
			}
		}
		w = &guessWindow{start: now}
		g.m[ip] = w
	}
	w.bad++
}
