package config

import (
	"testing"
	"time"
)

func TestUpdateWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 1, 2, h, m, 0, 0, time.UTC) }
	cases := []struct {
		window string
		t      time.Time
		want   bool
	}{
		{"", at(12, 0), true},
		{"02:00-05:00", at(3, 0), true},
		{"02:00-05:00", at(5, 0), false},
		{"02:00-05:00", at(1, 59), false},
		{"23:00-04:00", at(23, 30), true},
		{"23:00-04:00", at(3, 59), true},
		{"23:00-04:00", at(12, 0), false},
	}
	for _, c := range cases {
		got, err := Update{Window: c.window}.InWindow(c.t)
		if err != nil || got != c.want {
			t.Errorf("InWindow(%q, %v) = %v, %v; want %v", c.window, c.t.Format("15:04"), got, err, c.want)
		}
	}
	for _, bad := range []string{"night", "25:00-03:00", "02:00"} {
		if _, err := (Update{Window: bad}).InWindow(at(1, 0)); err == nil {
			t.Errorf("InWindow(%q) accepted a malformed window", bad)
		}
	}
}

func TestUpdateDurations(t *testing.T) {
	if d, err := (Update{}).CheckInterval(); err != nil || d != 24*time.Hour {
		t.Errorf("default CheckInterval = %v, %v", d, err)
	}
	if d, err := (Update{CheckEvery: "10s"}).CheckInterval(); err != nil || d != 10*time.Second {
		t.Errorf("CheckInterval(10s) = %v, %v", d, err)
	}
	if _, err := (Update{HealthTimeout: "-1m"}).HealthDeadline(); err == nil {
		t.Error("negative health timeout accepted")
	}
}

func TestUntilWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 22, h, m, 0, 0, time.UTC) }
	cases := []struct {
		window string
		t      time.Time
		want   time.Duration
	}{
		{"", at(12, 0), 0},
		{"02:00-05:00", at(3, 0), 0},
		{"02:00-05:00", at(1, 30), 30 * time.Minute},
		{"02:00-05:00", at(14, 0), 12 * time.Hour},
		{"23:00-04:00", at(1, 0), 0},
		{"23:00-04:00", at(12, 0), 11 * time.Hour},
	}
	for _, c := range cases {
		got, err := Update{Window: c.window}.UntilWindow(c.t)
		if err != nil || got != c.want {
			t.Errorf("UntilWindow(%q, %v) = %v, %v; want %v", c.window, c.t.Format("15:04"), got, err, c.want)
		}
	}
}
