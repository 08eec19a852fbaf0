package config

import "testing"

func TestFederationAllows(t *testing.T) {
	for _, c := range []struct {
		f      Federation
		domain string
		want   bool
	}{
		{Federation{}, "example.org", true},
		{Federation{Off: true}, "example.org", false},
		{Federation{Block: []string{"spam.example"}}, "spam.example", false},
		{Federation{Block: []string{"spam.example"}}, "muc.SPAM.example", false},
		{Federation{Block: []string{"spam.example"}}, "notspam.example", true},
		{Federation{Allow: []string{"friends.example"}}, "friends.example", true},
		{Federation{Allow: []string{"friends.example"}}, "other.example", false},
		{Federation{Allow: []string{"friends.example"}, Block: []string{"bad.friends.example"}}, "bad.friends.example", false},
	} {
		if got := c.f.Allows(c.domain); got != c.want {
			t.Errorf("%+v.Allows(%q) = %v, want %v", c.f, c.domain, got, c.want)
		}
	}
}
