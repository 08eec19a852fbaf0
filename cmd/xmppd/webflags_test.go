package main

import "testing"

// -web and -web-tls: port 80/443 only on the box (state /perm/hearth),
// 127.0.0.1:8080 under -dev, nothing for tests and benchmarks that start
// xmppd with a state directory of their own.
func TestPickAddr(t *testing.T) {
	for _, c := range []struct {
		v          string
		onBox, dev bool
		want       string
	}{
		{"auto", true, false, ":80"},
		{"auto", false, true, "127.0.0.1:8080"},
		{"auto", false, false, ""},
		{"none", true, false, ""},
		{"127.0.0.1:9", false, false, "127.0.0.1:9"},
	} {
		if got := pickAddr(c.v, c.onBox, ":80", c.dev, "127.0.0.1:8080"); got != c.want {
			t.Errorf("pickAddr(%q, box %v, dev %v) = %q, want %q", c.v, c.onBox, c.dev, got, c.want)
		}
	}
}
