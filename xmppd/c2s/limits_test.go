package c2s

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func TestShaperPausesReading(t *testing.T) {
	src := bytes.NewReader(make([]byte, 600<<10))
	s := newShaper(src, 1<<20, 100<<10) // 1 MiB/s after a 100 KiB burst
	began := time.Now()
	n, _ := io.Copy(io.Discard, s)
	took := time.Since(began)
	if n != 600<<10 {
		t.Fatalf("read %d bytes", n)
	}
	// 500 KiB over the burst at 1 MiB/s needs about half a second.
	if took < 400*time.Millisecond {
		t.Fatalf("600 KiB read in %v: not shaped", took)
	}
}

func TestBackoffGrowsPerAddress(t *testing.T) {
	l := newIPLimits()
	var got []time.Duration
	for i := 0; i < 6; i++ {
		got = append(got, l.failed("192.0.2.1"))
	}
	if got[0] != 0 || got[2] != 0 || got[3] != time.Second || got[4] != 2*time.Second || got[5] != 4*time.Second {
		t.Fatalf("back-off sequence %v", got)
	}
	if d := l.failed("192.0.2.2"); d != 0 {
		t.Fatalf("another address is slowed down: %v", d)
	}
}
