package timemod_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
)

func TestTime(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := iqtest.Login(t, d, "alice", "r")
	before := time.Now().Add(-time.Second)
	q := c.Result("get", iqtest.Domain, "<time xmlns='urn:xmpp:time'/>")
	after := time.Now().Add(time.Second)
	const ns = "urn:xmpp:time"
	utc, tzo := q.ChildText(ns, "utc"), q.ChildText(ns, "tzo")
	// XEP-0082 DateTime in UTC with 'Z'; TZD as ±hh:mm.
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`).MatchString(utc) {
		t.Errorf("utc %q is not a XEP-0082 UTC DateTime", utc)
	}
	if !regexp.MustCompile(`^([+-]\d\d:\d\d|Z)$`).MatchString(tzo) {
		t.Errorf("tzo %q", tzo)
	}
	at, err := time.Parse(time.RFC3339Nano, utc)
	if err != nil || at.Before(before) || at.After(after) {
		t.Errorf("utc %q is not now (%v)", utc, err)
	}
	if _, off := time.Now().Zone(); off == 0 && tzo != "+00:00" && tzo != "Z" {
		t.Errorf("tzo %q in a UTC zone", tzo)
	}
}
