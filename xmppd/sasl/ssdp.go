package sasl

import (
	"encoding/base64"
	"hash"
	"slices"
	"strings"
)

// DowngradeHash is XEP-0474's SSDP hash of what the server advertised: its
// SASL mechanisms sorted (i;octet) and joined by 0x1E, then, when it
// advertised channel-binding types (XEP-0440), 0x1F and those types sorted
// and joined the same way; hashed with the SCRAM mechanism's hash, base64.
// The server sends it as the "h" attribute of server-first-message, where
// the client's proof covers it: a man in the middle who stripped -PLUS or
// the strong binding types from the features cannot also fix the hash
// without the password.
func DowngradeHash(newHash func() hash.Hash, mechs, cbTypes []string, cbAdvertised bool) string {
	m := slices.Clone(mechs)
	slices.Sort(m)
	s := strings.Join(m, "\x1e")
	if cbAdvertised {
		c := slices.Clone(cbTypes)
		slices.Sort(c)
		s += "\x1f" + strings.Join(c, "\x1e")
	}
	h := newHash()
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Advertised tells the exchange what the connection advertised, so that its
// server-first-message carries XEP-0474's downgrade-protection hash. Call
// it before the first Next.
func (s *Scram) Advertised(mechs, cbTypes []string, cbAdvertised bool) {
	s.ssdp = DowngradeHash(s.newHash, mechs, cbTypes, cbAdvertised)
}
