//go:build e2e

package image_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/clock"
	"github.com/hearthchat/hearth/image"
	"github.com/hearthchat/hearth/image/vm"
)

// The guest's NTP server: qemu's user network shows the namespace's
// loopback to the guest as 10.0.2.2 (vm.Options.ReachNamespace).
const (
	guestNTPServer = "10.0.2.2"
	ntpPackage     = "github.com/gokrazy/gokrazy/cmd/ntp"
)

// TestPiWithoutBatteryClock boots the Pi image itself on an emulated
// Raspberry Pi 3 B, whose clock starts at 1970 like a real Pi's. The box
// must serve a certificate valid at its own time (raised to the image's
// build time, here set to 2 Jan 2026) and, once NTP moves the clock to the
// present, still the same certificate (members pinned it) and valid; the
// clock it learnt is saved on /perm for the next boot.
func TestPiWithoutBatteryClock(t *testing.T) {
	gok(t)
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Fatal("qemu-system-aarch64 missing: make test-deps installs qemu-system-arm")
	}
	start := time.Now()
	const domain = "hearth.local"
	seed := t.TempDir()
	state := filepath.Join(seed, "hearth")
	alice := "alice:" + randomPassword(t)
	name, pw, _ := strings.Cut(alice, ":")
	if out, err := exec.Command(hostXmppd(t), "-state", state, "-domain", domain, "useradd", name, pw).CombinedOutput(); err != nil {
		t.Fatalf("xmppd useradd: %v\n%s", err, out)
	}
	// No certificate in the seed: xmppd makes its own on the box, at
	// whatever the box's clock says.
	os.RemoveAll(filepath.Join(state, "tls"))
	claim(t, state)

	// config.json's own Pi image, with gokrazy's NTP client asking the
	// test instead of pool.ntp.org.
	b := builder(t, "1")
	b.Overrides = ntpOverride(t, guestNTPServer)
	built := clock.Epoch.Add(24 * time.Hour)
	b.BuildTime = built
	img := filepath.Join(t.TempDir(), "hearth-pi.img")
	if _, err := b.Image(image.Pi, img, seed); err != nil {
		t.Fatalf("%v\n%s", err, gokLog(t))
	}
	t.Logf("Pi image built in %v", time.Since(start).Round(100*time.Millisecond))
	boot := t.TempDir()
	pi := &vm.Pi{Kernel: filepath.Join(boot, "vmlinuz"), DTB: filepath.Join(boot, "bcm2710-rpi-3-b.dtb"), Cmdline: readBoot(t, img, "cmdline.txt")}
	for _, f := range []string{pi.Kernel, pi.DTB} {
		data, err := image.ReadBootFile(img, filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	bootStart := time.Now()
	box := bootPi(t, img, pi, vm.PiMAC)
	if err := box.WaitXMPP(t, domain); err != nil {
		t.Fatal(err)
	}
	t.Logf("power-on to XMPP answering on the emulated Pi: %v", time.Since(bootStart).Round(100*time.Millisecond))
	port, tlsPort, ntp := box.port, box.tlsPort, box.ntp

	// Before NTP: the clock was raised from 1970 to the build time.
	cert := serverCert(t, tlsPort, domain)
	caFile := filepath.Join(t.TempDir(), "box.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
	t.Logf("certificate made on the box: %v – %v", cert.NotBefore, cert.NotAfter)
	validAt(t, cert, domain, time.Now())
	boxNow := boxTime(t, port, domain, caFile, alice)
	t.Logf("box clock before NTP: %v", boxNow)
	if boxNow.Before(built) || boxNow.After(built.Add(time.Hour)) {
		t.Errorf("box clock %v before NTP, want the build time %v plus the uptime (not 1970)", boxNow, built)
	}
	validAt(t, cert, domain, boxNow)

	// NTP answers: the clock jumps to the present.
	ntp.answer.Store(true)
	var boxLater time.Time
	for deadline := time.Now().Add(2 * time.Minute); ; {
		boxLater = boxTime(t, port, domain, caFile, alice)
		if d := time.Since(boxLater); d < time.Minute && d > -time.Minute {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("box clock %v two minutes after NTP started answering (%d answers)", boxLater, ntp.answers.Load())
		}
		time.Sleep(3 * time.Second)
	}
	jumped := time.Now()
	t.Logf("box clock after NTP: %v (%d NTP answers)", boxLater, ntp.answers.Load())
	after := serverCert(t, tlsPort, domain)
	if !bytes.Equal(after.Raw, cert.Raw) {
		t.Errorf("certificate changed when the clock jumped: %x → %x (members pinned the first)", sha256.Sum256(cert.Raw), sha256.Sum256(after.Raw))
	}
	validAt(t, after, domain, boxLater)
	validAt(t, after, domain, boxLater.AddDate(50, 0, 0))

	// xmppd saves the clock within a minute of the jump (appliance/clock
	// checks every minute); ext4 commits within 5 s. Then a power cut.
	if d := 75*time.Second - time.Since(jumped); d > 0 {
		time.Sleep(d)
	}
	box.v.Stop()
	raw := strings.TrimSpace(string(permFile(t, img, "/hearth/clock")))
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		t.Fatalf("/perm/hearth/clock = %q: %v", raw, err)
	}
	saved := time.Unix(n, 0)
	if saved.Before(boxLater) {
		t.Errorf("/perm/hearth/clock = %v, before the time NTP gave (%v): the next boot would start too early", saved, boxLater)
	}

	// Second boot after the power cut, with no NTP answer, on a USB
	// adapter with a locally administered address: the kernel names it
	// usb0, which gokrazy's DHCP client alone never served (cmd/wired).
	// The clock starts at what /perm saved, not at the build time.
	bootStart = time.Now()
	box = bootPi(t, img, pi, "52:54:00:12:34:56")
	if err := box.WaitXMPP(t, domain); err != nil {
		t.Fatal(err)
	}
	t.Logf("second boot (usb0) to XMPP answering: %v", time.Since(bootStart).Round(100*time.Millisecond))
	if log := box.v.SerialLog(); !strings.Contains(log, "usb0") {
		t.Errorf("the kernel did not name the adapter usb0; the second boot proves nothing about it")
	}
	again := boxTime(t, box.port, domain, caFile, alice)
	t.Logf("box clock at the second boot: %v (saved %v)", again, saved)
	if again.Before(saved) || again.After(saved.Add(time.Hour)) {
		t.Errorf("box clock %v at the second boot, want the saved %v plus the uptime", again, saved)
	}
	if c := serverCert(t, box.tlsPort, domain); !bytes.Equal(c.Raw, cert.Raw) {
		t.Error("certificate changed across the reboot")
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Second))
}

// piBox is an emulated Pi running the image, with its XMPP ports forwarded
// and an NTP server the test controls.
type piBox struct {
	v             *vm.VM
	port, tlsPort int
	ntp           *ntpServer
}

func bootPi(t *testing.T, img string, pi *vm.Pi, mac string) *piBox {
	t.Helper()
	b := &piBox{port: freePort(t), tlsPort: freePort(t), ntp: &ntpServer{}}
	serial := filepath.Join(t.TempDir(), "serial.log")
	qemuLog := filepath.Join(t.TempDir(), "qemu.log")
	logf, err := os.Create(qemuLog)
	if err != nil {
		t.Fatal(err)
	}
	b.v, err = vm.Start(vm.Options{
		Image: img, Serial: serial, Log: logf, Pi: pi, MAC: mac,
		Ports:   map[int]int{5222: b.port, 5223: b.tlsPort},
		Isolate: true, ReachNamespace: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.v.Restarts > 0 {
		t.Logf("qemu stalled before the guest printed anything; powered on again (%d)", b.v.Restarts)
	}
	t.Cleanup(func() {
		b.v.Stop()
		logf.Close()
		if t.Failed() {
			log := b.v.SerialTail(6000)
			t.Logf("serial console (tail):\n%s", log)
			if q, _ := os.ReadFile(qemuLog); len(q) > 0 {
				t.Logf("qemu's own output:\n%s", q)
			}
		}
	})
	conn, err := b.v.ListenUDP(123)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go b.ntp.serve(conn)
	return b
}

// WaitXMPP waits (at most 5 minutes) for the box's XMPP port to answer.
func (b *piBox) WaitXMPP(t *testing.T, domain string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return b.v.WaitXMPP(ctx, b.port, domain)
}

// ntpOverride is config.json's PackageConfig with gokrazy's NTP client
// pointed at server.
func ntpOverride(t *testing.T, server string) map[string]json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoDir(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		PackageConfig map[string]map[string]any
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.PackageConfig == nil {
		cfg.PackageConfig = map[string]map[string]any{}
	}
	cfg.PackageConfig[ntpPackage] = map[string]any{"CommandLineFlags": []string{server}}
	pc, err := json.Marshal(cfg.PackageConfig)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]json.RawMessage{"PackageConfig": pc}
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := vm.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serverCert is the certificate the box serves on its direct-TLS port.
func serverCert(t *testing.T, port int, domain string) *x509.Certificate {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
		ServerName: domain, InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"},
	})
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// validAt checks cert as an app that pinned it would, with its clock at at.
func validAt(t *testing.T, cert *x509.Certificate, domain string, at time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: domain, Roots: pool, CurrentTime: at}); err != nil {
		t.Errorf("certificate (%v – %v) not valid at %v: %v", cert.NotBefore, cert.NotAfter, at, err)
	}
}

// boxTime asks the box for its clock (XEP-0202) through slixmpp, which
// checks the box's certificate with OpenSSL at this machine's clock.
func boxTime(t *testing.T, port int, domain, ca, user string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "boxtime.py"),
		"--port", fmt.Sprint(port), "--domain", domain, "--ca", ca, "--user", user, "--timeout", "30").CombinedOutput()
	res := strings.TrimSpace(string(out))
	if i := strings.LastIndex(res, "\n"); i >= 0 {
		res = res[i+1:]
	}
	if err != nil || !strings.HasPrefix(res, "OK ") {
		t.Fatalf("box time over XMPP: %v: %s", err, out)
	}
	at, err := time.Parse(time.RFC3339, strings.TrimPrefix(res, "OK "))
	if err != nil {
		t.Fatalf("box time %q: %v", res, err)
	}
	return at
}

// ntpServer answers SNTP queries (RFC 4330) with this machine's clock once
// answer is set; until then it stays silent, like an unreachable pool.
type ntpServer struct {
	answer  atomic.Bool
	answers atomic.Int64
}

// ntpEra is the offset of the Unix epoch in NTP's (1900) seconds.
const ntpEra = 2208988800

func ntpStamp(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEra)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

func (s *ntpServer) serve(c net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 48 || !s.answer.Load() {
			continue
		}
		now := ntpStamp(time.Now())
		resp := make([]byte, 48)
		resp[0] = buf[0]&0x38 | 4 // leap 0, the client's version, mode 4 (server)
		resp[1] = 1               // stratum 1: a reference clock
		resp[2] = buf[2]          // poll
		resp[3] = 0xec            // precision 2^-20 s
		copy(resp[12:16], "TEST")
		binary.BigEndian.PutUint64(resp[16:], now) // reference time
		copy(resp[24:32], buf[40:48])              // origin = the client's transmit time
		binary.BigEndian.PutUint64(resp[32:], now) // receive time
		binary.BigEndian.PutUint64(resp[40:], now) // transmit time
		if _, err := c.WriteTo(resp, from); err == nil {
			s.answers.Add(1)
		}
	}
}
