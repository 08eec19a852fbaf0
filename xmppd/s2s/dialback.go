package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// Key is the Server Dialback key (XEP-0220) for a stream with id from
// originating to receiving, made as XEP-0185 recommends: HMAC-SHA256 keyed
// with the hex SHA-256 of this box's secret, over "receiving originating
// id". Only this box ever checks its own keys (a db:verify comes back to
// it), so nothing but the secret needs to stay stable; it lives in the
// store (store.Secret("dialback")), so keys given out before a restart
// still verify after it.
func Key(secret []byte, receiving, originating, id string) string {
	h := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(h[:])))
	m.Write([]byte(receiving + " " + originating + " " + id))
	return hex.EncodeToString(m.Sum(nil))
}

// checkKey compares a presented key with ours in constant time.
func checkKey(secret []byte, receiving, originating, id, got string) bool {
	if id == "" || got == "" {
		return false
	}
	want := Key(secret, receiving, originating, id)
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// dbElement is a dialback element written with the db: prefix
// (<db:result/>, <db:verify/>). Namespace-aware peers read <verify
// xmlns='jabber:server:dialback'/> the same, but ejabberd 23.01 matches
// dialback elements by their written name "db:verify" and ignored ours:
// its answer to our connect-back never came and our own db:result went
// unanswered (TestEjabberdDialback). XEP-0220's examples all use the prefix.
func dbElement(local string, attrs ...string) *stream.Element {
	el := stream.New(NSDialback, local, attrs...)
	el.Prefix = "db"
	return el
}
