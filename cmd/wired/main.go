// Command wired runs gokrazy's DHCP client on the box's first wired network
// interface, whatever the kernel named it.
//
// gokrazy's client serves eth0 unless told otherwise, but a USB Ethernet
// adapter can come up as usb0: the kernel's usbnet names CDC-ECM, CDC-NCM
// and RNDIS devices with a locally administered MAC address usb%d (phone
// tethering, many cheap adapters; reproduced with qemu's USB network device
// on an emulated Pi). A Pi Zero 2 W has no Ethernet of its own, so with
// such an adapter the box never got an address. config.json keeps gokrazy's
// client from starting by itself (DontStart) and starts this instead, which
// waits for a wired interface and then becomes the client (exec, so gokrazy
// supervises the client itself).
package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dhcpClient is where gok puts gokrazy's DHCP client (GokrazyPackages).
const dhcpClient = "/gokrazy/dhcp"

func main() {
	log.SetFlags(0)
	var name string
	for {
		var err error
		if name, err = pick("/sys/class/net"); err != nil {
			log.Fatal(err)
		}
		if name != "" {
			break
		}
		// Adapters on USB appear seconds after boot.
		time.Sleep(time.Second)
	}
	args := append([]string{dhcpClient, "-interface=" + name}, os.Args[1:]...)
	log.Printf("wired: DHCP on %s", name)
	if err := syscall.Exec(dhcpClient, args, os.Environ()); err != nil {
		log.Fatalf("wired: exec %s: %v", dhcpClient, err)
	}
}

// pick returns the wired interface to serve, from a sysfs class/net
// directory: eth0 if there is one (what gokrazy served before), otherwise
// the Ethernet interface of a real device with the lowest index; "" when
// there is none yet. Wi-Fi, loopback and virtual interfaces (no device
// behind them) are never picked.
func pick(classNet string) (string, error) {
	ents, err := os.ReadDir(classNet)
	if err != nil {
		return "", fmt.Errorf("wired: %w", err)
	}
	type cand struct {
		name  string
		index int
	}
	var cands []cand
	for _, e := range ents {
		dir := filepath.Join(classNet, e.Name())
		if !wired(dir) {
			continue
		}
		if e.Name() == "eth0" {
			return "eth0", nil
		}
		idx, _ := strconv.Atoi(read(filepath.Join(dir, "ifindex")))
		cands = append(cands, cand{e.Name(), idx})
	}
	if len(cands) == 0 {
		return "", nil
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].index < cands[j].index })
	return cands[0].name, nil
}

// wired: Ethernet framing (ARPHRD_ETHER), backed by a device, not Wi-Fi.
func wired(dir string) bool {
	if read(filepath.Join(dir, "type")) != "1" {
		return false
	}
	if !exists(filepath.Join(dir, "device")) {
		return false // veth, bridges, tun/tap
	}
	return !exists(filepath.Join(dir, "wireless")) && !exists(filepath.Join(dir, "phy80211"))
}

func read(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
