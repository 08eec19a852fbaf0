package browsertest

import (
	"fmt"
	"testing"
)

// recorder stands in for the test a Result is judged in.
type recorder struct {
	testing.TB
	errors, logs []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Logf(f string, a ...any)   { r.logs = append(r.logs, fmt.Sprintf(f, a...)) }
func (r *recorder) Errorf(f string, a ...any) { r.errors = append(r.errors, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// TestJudge: every request that left the box and every violation fails
// the test the scripts run in; the pages are logged as figures.
func TestJudge(t *testing.T) {
	var res Result
	Decode(t, []byte("progress line\n"+`{"pages":[{"name":"a","bytes":10,"requests":2}],"thirdParty":["https://cdn.example/x.js"],`+
		`"violations":[{"page":"a","id":"wider-than-phone"},{"page":"a","id":"color-contrast"}],"checks":{"ok":true}}`+"\n"), &res)
	r := &recorder{TB: t}
	res.Judge(r)
	if len(r.errors) != 3 || len(r.logs) != 1 || r.logs[0] != "figure: page a 10 bytes in 2 responses" {
		t.Errorf("judged: errors %q, logs %q", r.errors, r.logs)
	}
	if res.Checks["ok"] != true {
		t.Errorf("checks %v", res.Checks)
	}
	clean := &recorder{TB: t}
	Result{Pages: res.Pages}.Judge(clean)
	if len(clean.errors) != 0 {
		t.Errorf("a clean run judged: %q", clean.errors)
	}
}
