package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// iface describes one /sys/class/net entry.
type iface struct {
	name     string
	typ      int // ARPHRD_*: 1 Ethernet, 772 loopback
	index    int
	device   bool // a real device behind it
	wireless bool
}

func sysfs(t *testing.T, ifs ...iface) string {
	t.Helper()
	root := t.TempDir()
	for _, i := range ifs {
		dir := filepath.Join(root, i.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "type"), []byte(strconv.Itoa(i.typ)+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "ifindex"), []byte(strconv.Itoa(i.index)+"\n"), 0o644)
		if i.device {
			os.Mkdir(filepath.Join(dir, "device"), 0o755)
		}
		if i.wireless {
			os.Mkdir(filepath.Join(dir, "wireless"), 0o755)
		}
	}
	return root
}

func TestPick(t *testing.T) {
	lo := iface{name: "lo", typ: 772, index: 1}
	cases := []struct {
		name string
		ifs  []iface
		want string
	}{
		{"nothing yet", []iface{lo}, ""},
		{"onboard eth0", []iface{lo, {name: "eth0", typ: 1, index: 2, device: true}}, "eth0"},
		// A Pi Zero 2 W with a CDC/RNDIS adapter whose MAC is locally
		// administered: gokrazy's client waited for eth0 forever.
		{"USB adapter named usb0", []iface{lo, {name: "usb0", typ: 1, index: 2, device: true}}, "usb0"},
		{"eth0 preferred", []iface{lo, {name: "usb0", typ: 1, index: 2, device: true}, {name: "eth0", typ: 1, index: 3, device: true}}, "eth0"},
		{"lowest index", []iface{lo, {name: "usb1", typ: 1, index: 5, device: true}, {name: "enx001122", typ: 1, index: 4, device: true}}, "enx001122"},
		{"Wi-Fi is not wired", []iface{lo, {name: "wlan0", typ: 1, index: 2, device: true, wireless: true}}, ""},
		{"virtual is not wired", []iface{lo, {name: "veth0", typ: 1, index: 2}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := pick(sysfs(t, c.ifs...))
			if err != nil || got != c.want {
				t.Fatalf("pick = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
