//go:build e2e

package image_test

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/image"
	"github.com/hearthchat/hearth/image/vm"
)

// TestPiImage builds the Raspberry Pi image and checks its partition table
// and contents (there is no Pi here to boot it on).
func TestPiImage(t *testing.T) {
	start := time.Now()
	b := builder(t, "1")
	img := filepath.Join(scratchDir(t), "hearth-pi.img")
	code, err := b.Image(image.Pi, img, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, gokLog(t))
	}
	t.Logf("Pi image built in %v", time.Since(start).Round(time.Millisecond))
	if !image.ValidSetupCode(code) {
		t.Fatalf("setup code %q has the wrong shape", code)
	}

	parts := checkPartitions(t, img, image.TypeRootARM64)

	// Boot partition: what a Pi 3, 4, 5 and Zero 2 W need to start.
	files := bootFiles(t, img)
	for _, f := range []string{
		"vmlinuz", "cmdline.txt", "config.txt",
		"start4.elf", "fixup4.dat", "start.elf", "bootcode.bin",
		"bcm2710-rpi-3-b.dtb", "bcm2710-rpi-3-b-plus.dtb", "bcm2710-rpi-zero-2-w.dtb",
		"bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb", "pieeprom.upd",
		image.SetupCodeFile,
	} {
		if !files[strings.ToLower(f)] {
			t.Errorf("boot partition lacks %s", f)
		}
	}
	cmdline := readBoot(t, img, "cmdline.txt")
	for _, want := range []string{"root=PARTUUID=", "init=/gokrazy/init"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("cmdline.txt %q lacks %q", cmdline, want)
		}
	}
	setup := readBoot(t, img, image.SetupCodeFile)
	if !strings.Contains(setup, code) || !strings.Contains(setup, image.SetupURL(code)) {
		t.Errorf("%s does not hold the code %s and its URL:\n%s", image.SetupCodeFile, code, setup)
	}

	// Root file system: our programs for arm64, gokrazy's init, no password.
	root := extractSquashfs(t, img, parts[1])
	listing := squashfsList(t, root)
	// Tor for the onion service: the bundle of image/tor/collect.sh, laid
	// out where netconf/onion looks for it (onion.BundleDir).
	for _, f := range []string{"/gokrazy/init", "/gokrazy/dhcp", "/user/xmppd", "/user/netconf", "/user/updater", "/user/wired", "/user/firstboot", "/etc/hearth/update-root.json",
		"/usr/lib/tor/tor", "/usr/lib/tor/ld-linux-aarch64.so.1", "/usr/lib/tor/lib/libc.so.6"} {
		if !listing[f] {
			t.Errorf("root file system lacks %s", f)
		}
	}
	if listing["/etc/gokr-pw.txt"] {
		t.Error("root file system has /etc/gokr-pw.txt: gokrazy's web UI would accept a password over the network")
	}
	for _, prog := range []string{"/user/xmppd", "/user/netconf", "/user/updater", "/user/wired", "/user/firstboot", "/usr/lib/tor/tor"} {
		if m := elfMachine(t, root, prog); m != elf.EM_AARCH64 {
			t.Errorf("%s is built for %v, want arm64", prog, m)
		}
	}

	// /perm: an ext4 file system holding the same setup code.
	permDev := fmt.Sprintf("%s?offset=%d", img, parts[3].Start)
	out, err := exec.Command("debugfs", "-R", "cat /"+image.PermSetupCodeFile, permDev).Output()
	if err != nil || strings.TrimSpace(string(out)) != code {
		t.Errorf("/perm/%s = %q (%v), want %q", image.PermSetupCodeFile, out, err, code)
	}
	if out, err := exec.Command("e2fsck", "-fn", permDev).CombinedOutput(); err != nil {
		t.Errorf("e2fsck of /perm: %v\n%s", err, out)
	}

	// A second build gets a different setup code.
	code2, err := b.Image(image.Pi, img, "")
	if err != nil {
		t.Fatal(err)
	}
	if code2 == code {
		t.Errorf("two builds share the setup code %s", code)
	}
}

// checkPartitions compares our own reading of the partition table with
// sfdisk's and checks gokrazy's layout: boot, root A, root B, /perm.
func checkPartitions(t *testing.T, img, rootType string) []image.Partition {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts, err := image.ReadPartitions(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 {
		t.Fatalf("%d partitions, want 4: %+v", len(parts), parts)
	}
	const mb = 1 << 20
	want := []struct {
		typ  string
		size int64
	}{
		{image.TypeEFISystem, 100 * mb},
		{rootType, 500 * mb},
		{image.TypeLinuxData, 500 * mb},
		{image.TypeLinuxData, 0},
	}
	for i, w := range want {
		p := parts[i]
		if p.Number != i+1 || p.Type != w.typ || (w.size != 0 && p.Size != w.size) {
			t.Errorf("partition %d = %+v, want type %s size %d", i+1, p, w.typ, w.size)
		}
		if i > 0 && p.Start < parts[i-1].Start+parts[i-1].Size {
			t.Errorf("partition %d overlaps its predecessor", i+1)
		}
	}
	if end := parts[3].Start + parts[3].Size; end > image.StorageBytes || parts[3].Size < 500*mb {
		t.Errorf("/perm partition %+v does not fit the %d-byte image or is too small", parts[3], image.StorageBytes)
	}

	// sfdisk, a parser we did not write, must read the same table.
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var st struct {
		PartitionTable struct {
			Label      string `json:"label"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if st.PartitionTable.Label != "gpt" || len(st.PartitionTable.Partitions) != 4 {
		t.Fatalf("sfdisk sees %s with %d partitions", st.PartitionTable.Label, len(st.PartitionTable.Partitions))
	}
	for i, sp := range st.PartitionTable.Partitions {
		if sp.Start*512 != parts[i].Start || sp.Size*512 != parts[i].Size || !strings.EqualFold(sp.Type, parts[i].Type) {
			t.Errorf("partition %d: sfdisk %+v, ours %+v", i+1, sp, parts[i])
		}
	}
	return parts
}

func bootFiles(t *testing.T, img string) map[string]bool {
	t.Helper()
	p := partition(t, img, 1)
	out, err := exec.Command("mdir", "-b", "-i", fmt.Sprintf("%s@@%d", img, p.Start), "::/").Output()
	if err != nil {
		t.Fatalf("mdir: %v", err)
	}
	files := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		files[strings.ToLower(strings.TrimPrefix(l, "::/"))] = true
	}
	return files
}

func readBoot(t *testing.T, img, name string) string {
	t.Helper()
	b, err := image.ReadBootFile(img, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func partition(t *testing.T, img string, n int) image.Partition {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts, err := image.ReadPartitions(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Number == n {
			return p
		}
	}
	t.Fatalf("no partition %d", n)
	return image.Partition{}
}

// extractSquashfs copies the squashfs in partition p to a file, only as many
// bytes as its superblock says it uses.
func extractSquashfs(t *testing.T, img string, p image.Partition) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 96)
	if _, err := f.ReadAt(sb, p.Start); err != nil {
		t.Fatal(err)
	}
	if string(sb[:4]) != "hsqs" {
		t.Fatalf("partition %d holds no squashfs (magic %q)", p.Number, sb[:4])
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:]))
	dst := filepath.Join(t.TempDir(), "root.squashfs")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(f, p.Start, used)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func squashfsList(t *testing.T, sq string) map[string]bool {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-l", "-d", "", sq).Output()
	if err != nil {
		t.Fatalf("unsquashfs -l: %v", err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		m["/"+strings.TrimPrefix(strings.TrimSpace(l), "/")] = true
	}
	return m
}

func elfMachine(t *testing.T, sq, path string) elf.Machine {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-cat", sq, path).Output()
	if err != nil {
		t.Fatalf("unsquashfs -cat %s: %v", path, err)
	}
	ef, err := elf.NewFile(strings.NewReader(string(out)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ef.Machine
}

// vmImage builds the amd64 image with a prepared /perm: two accounts made by
// the real xmppd offline and a certificate the clients can check.
type vmImage struct {
	Path, CA   string
	Alice, Bob string // "name:password"
	Domain     string
	Code       string
}

func buildVMImage(t *testing.T, version string) vmImage {
	return buildVMImageWith(t, version, nil)
}

// buildVMImageWith lets prepare add files to the state dir before /perm is made.
func buildVMImageWith(t *testing.T, version string, prepare func(state string)) vmImage {
	t.Helper()
	gok(t)
	seed := t.TempDir()
	state := filepath.Join(seed, "hearth")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	v := vmImage{Domain: "hearth.local", Alice: "alice:" + randomPassword(t), Bob: "bob:" + randomPassword(t)}
	v.CA = filepath.Join(t.TempDir(), "ca.pem")
	cert := writeCert(t, state, v.Domain)
	if b, err := os.ReadFile(cert); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(v.CA, b, 0o600); err != nil {
		t.Fatal(err)
	}
	x := hostXmppd(t)
	for _, acct := range []string{v.Alice, v.Bob} {
		name, pw, _ := strings.Cut(acct, ":")
		if out, err := exec.Command(x, "-state", state, "useradd", name, pw).CombinedOutput(); err != nil {
			t.Fatalf("xmppd useradd %s: %v\n%s", name, err, out)
		}
	}
	if prepare != nil {
		prepare(state)
	}
	claim(t, state)
	v.Path = filepath.Join(t.TempDir(), "hearth-vm.img")
	start := time.Now()
	code, err := builder(t, version).Image(image.VM, v.Path, seed)
	if err != nil {
		t.Fatalf("%v\n%s", err, gokLog(t))
	}
	v.Code = code
	t.Logf("amd64 image %s built in %v", version, time.Since(start).Round(time.Millisecond))
	return v
}

// claim marks the box in state as set up (config.Claimed): until then
// xmppd holds every login but its own health check back.
func claim(t *testing.T, state string) {
	t.Helper()
	path := filepath.Join(state, "config.json")
	cfg, err := config.Load(path)
	if err != nil {
		cfg = config.Default()
	}
	cfg.Claimed = true
	if err := config.Save(path, cfg); err != nil {
		t.Fatal(err)
	}
}

func randomPassword(t *testing.T) string {
	code, err := image.NewSetupCode()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(code, "-", "")
}

// bootVM starts qemu on img with the XMPP port forwarded to a free loopback
// port and stops it when the test ends.
func bootVM(t *testing.T, img string) (*vm.VM, int) {
	return bootVMWith(t, img, 0)
}

// bootVMWith also connects the guest's feedAddr to feedPort on the host's
// loopback (if not zero).
func bootVMWith(t *testing.T, img string, feedPort int) (*vm.VM, int) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 missing: make test-deps installs qemu-system-x86")
	}
	port, err := vm.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	serial := filepath.Join(t.TempDir(), "serial.log")
	logf, err := os.Create(filepath.Join(t.TempDir(), "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	opts := vm.Options{Image: img, Serial: serial, Ports: map[int]int{5222: port}, Log: logf, Isolate: true}
	if feedPort != 0 {
		opts.GuestFwd = map[string]int{feedAddr: feedPort}
	}
	v, err := vm.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	if v.Restarts > 0 {
		t.Logf("qemu stalled before the guest printed anything; powered on again (%d)", v.Restarts)
	}
	t.Cleanup(func() {
		v.Stop()
		logf.Close()
		if t.Failed() {
			log := v.SerialTail(6000)
			t.Logf("serial console (tail):\n%s", log)
		}
	})
	return v, port
}

func chat(t *testing.T, v vmImage, port int, body string) string {
	t.Helper()
	return chatMode(t, v, port, "chat", body)
}

// chatMode runs chat.py in mode chat (both online), store (alice leaves a
// message for an offline bob) or fetch (bob must get that stored message).
func chatMode(t *testing.T, v vmImage, port int, mode, body string) string {
	t.Helper()
	out, err := runChat(v, port, mode, body, 60)
	if err != nil {
		t.Fatalf("slixmpp %s: %v\n%s", mode, err, out)
	}
	return out
}

func runChat(v vmImage, port int, mode, body string, timeout int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout+30)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "chat.py"),
		"--port", fmt.Sprint(port), "--domain", v.Domain, "--ca", v.CA, "--mode", mode,
		"--sender", v.Alice, "--receiver", v.Bob, "--body", body, "--timeout", fmt.Sprint(timeout))
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestVMBootsAndChats boots the amd64 image under qemu and has two slixmpp
// clients exchange a message through the forwarded port.
func TestVMBootsAndChats(t *testing.T) {
	// The onion service is on, so netconf starts the bundled tor through its
	// own loader on a box without libc. It reaches nothing: qemu's network
	// is restrict=on inside a namespace holding only a loopback.
	cfg := config.Default()
	cfg.Net.Tor = true
	img := buildVMImageWith(t, "1", func(state string) {
		if err := config.Save(filepath.Join(state, "config.json"), cfg); err != nil {
			t.Fatal(err)
		}
	})
	checkPartitions(t, img.Path, image.TypeRootX86_64)
	start := time.Now()
	v, port := bootVM(t, img.Path)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := v.WaitXMPP(ctx, port, img.Domain); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to XMPP answering: %v", time.Since(start).Round(100*time.Millisecond))
	res := chat(t, img, port, "hello from the host")
	t.Logf("boot to message delivered: %v (%s)", time.Since(start).Round(100*time.Millisecond), res)
	chatMode(t, img, port, "store", "for bob when he is back")
	chatMode(t, img, port, "fetch", "for bob when he is back")
	// Delivered once: the store dropped it, and a fetch that gets nothing fails.
	if out, err := runChat(img, port, "fetch", "for bob when he is back", 5); err == nil {
		t.Errorf("a delivered offline message came again: %s", out)
	}

	// netconf runs on the box beside xmppd: it reports its checks in
	// /perm/hearth/status/netconf.json, and the onion check names the
	// version of the tor it started. Give tor time to come up and ext4 its
	// 5 s commit interval, so the file survives the power cut.
	if d := 40*time.Second - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	v.Stop()
	var report struct {
		Checks []struct {
			ID, Level, Message string
			Detail             map[string]string
		}
	}
	raw := permFile(t, img.Path, "/hearth/status/netconf.json")
	if err := json.Unmarshal(raw, &report); err != nil {
		t.Fatalf("netconf status on /perm: %v\n%s", err, raw)
	}
	ids := map[string]bool{}
	for _, c := range report.Checks {
		ids[c.ID] = true
		if c.ID == "onion" {
			if !strings.HasPrefix(c.Detail["tor"], "0.") || !strings.HasSuffix(c.Detail["address"], ".onion") {
				t.Errorf("tor did not run on the box: onion check %s %q %v", c.Level, c.Message, c.Detail)
			} else {
				t.Logf("tor %s ran on the box for %s", c.Detail["tor"], c.Detail["address"])
			}
		}
	}
	if !ids["lan"] || !ids["onion"] {
		t.Errorf("netconf's status on the box lacks the lan and onion checks:\n%s", raw)
	}
}

// permFile reads a file from the ext4 /perm partition of a VM image whose
// qemu was killed: a copy of the partition gets its journal replayed by
// e2fsck first.
func permFile(t *testing.T, img, path string) []byte {
	t.Helper()
	p := partition(t, img, 4)
	cp := filepath.Join(t.TempDir(), "perm.ext4")
	if out, err := exec.Command("dd", "if="+img, "of="+cp, "bs=1M", "conv=sparse", "status=none",
		fmt.Sprintf("skip=%d", p.Start>>20), fmt.Sprintf("count=%d", (p.Size+1<<20-1)>>20)).CombinedOutput(); err != nil {
		t.Fatalf("copy /perm: %v\n%s", err, out)
	}
	// Exit status 1 means "errors corrected" (the journal replay).
	if out, err := exec.Command("e2fsck", "-fy", cp).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck of /perm after the power cut: %v\n%s", err, out)
		}
	}
	out, err := exec.Command("debugfs", "-R", "cat "+path, cp).Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("/perm%s: %v (%d bytes)", path, err, len(out))
	}
	return out
}
