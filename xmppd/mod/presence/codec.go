package presence

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// encodeStanza serializes a stanza for storage, declaring its namespace.
func encodeStanza(el *stream.Element) []byte { return el.Append(nil, "") }

var storedLimits = stream.Limits{MaxBytes: 1 << 20, MaxElements: 8192, MaxDepth: 32}

// decodeStanza parses what encodeStanza wrote, with the same parser and
// limits a little above a client's (stored bytes came from one, plus what
// the server added).
func decodeStanza(b []byte) (*stream.Element, error) {
	r := io.MultiReader(strings.NewReader("<s>"), bytes.NewReader(b))
	p := stream.NewParser(r, storedLimits)
	if ev, err := p.Next(); err != nil || ev.Kind != stream.Open {
		return nil, errors.New("presence: stored stanza: no wrapper")
	}
	ev, err := p.Next()
	if err != nil {
		return nil, err
	}
	if ev.Kind != stream.Stanza {
		return nil, errors.New("presence: stored stanza: not an element")
	}
	return ev.El, nil
}
