//go:build e2e

package image_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/setupcard"
	"github.com/hearthchat/hearth/image"
	"github.com/hearthchat/hearth/image/vm"
)

// published is the one publication build of a `go test` run: four tests
// flash it, each onto a card of its own (a sparse copy), which saves a
// ~20 s build for each but the first.
var published struct {
	once sync.Once
	path string
}

// buildPublished returns a fresh copy of the amd64 image as for
// publication: no setup code and nothing seeded on /perm, as thousands of
// people would flash it.
func buildPublished(t *testing.T) string {
	t.Helper()
	published.once.Do(func() {
		b := builder(t, "1")
		b.Publish = true
		img := filepath.Join(scratchDir(t), "hearth-vm-published.img")
		start := time.Now()
		code, err := b.Image(image.VM, img, "")
		if err != nil {
			t.Fatalf("%v\n%s", err, gokLog(t))
		}
		t.Logf("published amd64 image built in %v", time.Since(start).Round(time.Millisecond))
		if code != "" {
			t.Fatalf("a published image got the setup code %s", code)
		}
		published.path = img
	})
	if published.path == "" {
		t.Fatal("the published image did not build (see the first test that asked for it)")
	}
	img := filepath.Join(t.TempDir(), "hearth-vm.img")
	copyImage(t, published.path, img)
	if c := setupcard.Find(readBoot(t, img, image.SetupCodeFile)); c != "" {
		t.Fatalf("the published image's %s holds the code %s", image.SetupCodeFile, c)
	}
	if err := image.CheckNoSetupCode(img); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPublishRefusesSetupCode: a code on the card or on /perm of a
// publication image stops the build.
func TestPublishRefusesSetupCode(t *testing.T) {
	img := buildPublished(t)
	code, _ := image.NewSetupCode()

	// A seed with a code is refused before anything is built.
	seed := t.TempDir()
	os.MkdirAll(filepath.Join(seed, "hearth"), 0o700)
	os.WriteFile(filepath.Join(seed, image.PermSetupCodeFile), []byte(code), 0o600)
	b := builder(t, "1")
	b.Publish = true
	if _, err := b.Image(image.VM, filepath.Join(t.TempDir(), "x.img"), seed); err == nil || !strings.Contains(err.Error(), "setup code") {
		t.Errorf("publication build with a code in the /perm seed: %v", err)
	}

	// A code in the boot partition's file.
	withFile := filepath.Join(t.TempDir(), "boot.img")
	copyImage(t, img, withFile)
	if err := image.WriteBootFile(withFile, image.SetupCodeFile, []byte(image.SetupText(code))); err != nil {
		t.Fatal(err)
	}
	if err := image.CheckNoSetupCode(withFile); err == nil {
		t.Error("CheckNoSetupCode passed an image whose card file holds a code")
	}

	// A code on /perm.
	withPerm := filepath.Join(t.TempDir(), "perm.img")
	copyImage(t, img, withPerm)
	p := partition(t, withPerm, 4)
	src := filepath.Join(t.TempDir(), "code")
	os.WriteFile(src, []byte(code+"\n"), 0o600)
	dev := fmt.Sprintf("%s?offset=%d", withPerm, p.Start)
	if out, err := exec.Command("debugfs", "-w", "-R", "mkdir /hearth", dev).CombinedOutput(); err != nil {
		t.Fatalf("debugfs mkdir: %v %s", err, out)
	}
	if out, err := exec.Command("debugfs", "-w", "-R", "write "+src+" /"+image.PermSetupCodeFile, dev).CombinedOutput(); err != nil {
		t.Fatalf("debugfs write: %v %s", err, out)
	}
	if err := image.CheckNoSetupCode(withPerm); err == nil {
		t.Error("CheckNoSetupCode passed an image with /perm/" + image.PermSetupCodeFile)
	}
}

func copyImage(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// box is a booted VM with its forwarded ports (guest port -> host port).
type box struct {
	*vm.VM
	ports map[int]int
}

func bootBox(t *testing.T, img string, guestPorts ...int) box {
	t.Helper()
	ports := map[int]int{}
	for _, g := range guestPorts {
		ports[g] = freePort(t)
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vm.Start(vm.Options{Image: img, Serial: filepath.Join(dir, "serial.log"), Ports: ports, Log: logf, Isolate: true})
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
	return box{v, ports}
}

// cutAt waits (polling often: the box goes on while we look) for s on
// the console and then pulls the plug.
func cutAt(t *testing.T, v *vm.VM, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(v.SerialLog(), s) {
		if exited, err := v.Exited(); exited {
			t.Fatalf("qemu exited (%v) while waiting for %q", err, s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not on the console within %v", s, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	v.Stop()
}

var consoleCode = regexp.MustCompile(`Hearth setup code: ([0-9A-Z-]{19})`)

// codeOnConsole is the setup code the box showed on its console, waiting
// for it up to a minute: firstboot prints it just after it says it wrote
// the card's file, and a CI run read the console in between.
func codeOnConsole(t *testing.T, v *vm.VM) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if m := consoleCode.FindStringSubmatch(v.SerialLog()); m != nil && setupcard.Valid(m[1]) {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no setup code on the console")
		}
	}
}

// permState reports /perm's partition size and its file system's size
// (superblock as on the disk, journal not replayed) in bytes.
func permState(t *testing.T, img string) (part, fs int64) {
	t.Helper()
	p := partition(t, img, 4)
	out, err := exec.Command("dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", img, p.Start)).Output()
	if err != nil {
		t.Fatalf("dumpe2fs: %v", err)
	}
	return p.Size, superblockBytes(t, string(out))
}

func superblockBytes(t *testing.T, dump string) int64 {
	t.Helper()
	field := func(name string) int64 {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+)`).FindStringSubmatch(dump)
		if m == nil {
			t.Fatalf("dumpe2fs: no %s in\n%s", name, dump)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	return field("Block count") * field("Block size")
}

// TestVMFirstBootGrowsPerm flashes a published image onto a 4 GiB card
// and cuts the power twice while the first boot grows /perm: after the
// new partition table is written, and as the file system's resize starts.
// The third boot must end with /perm the whole card, ext4 clean, and the
// box's own setup code on the card, on /perm and on the console — the
// same code on every boot.
func TestVMFirstBootGrowsPerm(t *testing.T) {
	start := time.Now()
	img := buildPublished(t)
	oldPart, oldFS := permState(t, img)
	const card = 4 << 30
	if err := os.Truncate(img, card); err != nil {
		t.Fatal(err)
	}

	// Boot 1: the plug is pulled once the partition table's header is on
	// the card.
	b := bootBox(t, img)
	cutAt(t, b.VM, "growing /perm: header", 3*time.Minute)
	code1 := codeOnConsole(t, b.VM)
	part, fs := permState(t, img)
	t.Logf("cut 1 (after the table write): partition %d MB (was %d), file system %d MB (was %d)", part>>20, oldPart>>20, fs>>20, oldFS>>20)
	if part <= oldPart {
		t.Errorf("after \"header\" on the console the partition is still %d bytes", part)
	}

	// Boot 2: the plug is pulled as the resize starts.
	b = bootBox(t, img)
	cutAt(t, b.VM, "growing /perm: resize", 3*time.Minute)
	code2 := codeOnConsole(t, b.VM)
	_, fs2 := permState(t, img)
	dump, err := exec.Command("dumpe2fs", "-h", permCopy(t, img)).Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cut 2 (resize started): file system %d MB in the superblock, %d MB once the journal is replayed", fs2>>20, superblockBytes(t, string(dump))>>20)

	// Boot 3: finishes.
	b = bootBox(t, img)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitSerial(t, ctx, b.VM, "growing /perm: resized", 3*time.Minute)
	code3 := codeOnConsole(t, b.VM)
	// What statfs says on the box (the health page's storage figure).
	statfs := regexp.MustCompile(`-> (\d+) blocks`).FindStringSubmatch(b.SerialLog())
	b.Stop()
	t.Logf("three boots in %v", time.Since(start).Round(time.Second))
	if code1 != code2 || code2 != code3 {
		t.Errorf("the setup code changed between boots: %s, %s, %s", code1, code2, code3)
	}

	// The partition ends at the card's end (less the backup GPT, in
	// whole 4 KiB blocks), and the table is one sfdisk accepts.
	p := partition(t, img, 4)
	if end := p.Start + p.Size; end > card-33*512 || end < card-(1<<20) {
		t.Errorf("/perm partition ends at %d of a %d-byte card", end, card)
	}
	out, err := exec.Command("sfdisk", "--verify", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}

	// ext4: the whole partition, and clean once the journal is replayed
	// (the last boot was cut too).
	cp := permCopy(t, img)
	if out, err := exec.Command("e2fsck", "-fn", cp).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn of the grown /perm: %v\n%s", err, out)
	}
	dump, err = exec.Command("dumpe2fs", "-h", cp).Output()
	if err != nil {
		t.Fatal(err)
	}
	if statfs == nil {
		t.Error("firstboot did not report /perm's size after the resize")
	} else if n, _ := strconv.ParseInt(statfs[1], 10, 64); n*4096 < p.Size*9/10 {
		t.Errorf("statfs on the box: %d blocks of 4 KiB, the partition is %d bytes", n, p.Size)
	}
	if fsBytes := superblockBytes(t, string(dump)); fsBytes != p.Size {
		t.Errorf("file system %d bytes, partition %d", fsBytes, p.Size)
	} else {
		t.Logf("/perm: %d MB on a %d MB card (was %d MB)", fsBytes>>20, card>>20, oldFS>>20)
	}

	// The code a person reads off the card is the box's.
	card1 := readBoot(t, img, image.SetupCodeFile)
	if setupcard.Find(card1) != code3 || !strings.Contains(card1, setupcard.URL(code3)) {
		t.Errorf("%s on the card does not hold the console's code %s:\n%s", image.SetupCodeFile, code3, card1)
	}
	perm, err := exec.Command("debugfs", "-R", "cat /"+image.PermSetupCodeFile, cp).Output()
	if err != nil || strings.TrimSpace(string(perm)) != code3 {
		t.Errorf("/perm/%s = %q (%v), want %s", image.PermSetupCodeFile, perm, err, code3)
	}
	if out, err := exec.Command("fsck.vfat", "-n", bootCopy(t, img)).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n of the boot partition: %v\n%s", err, out)
	}
}

// permCopy copies /perm out of a VM image whose qemu was killed and
// replays its journal (e2fsck exit status 1: "errors corrected").
func permCopy(t *testing.T, img string) string {
	t.Helper()
	p := partition(t, img, 4)
	cp := filepath.Join(t.TempDir(), "perm.ext4")
	if out, err := exec.Command("dd", "if="+img, "of="+cp, "bs=1M", "conv=sparse", "status=none",
		fmt.Sprintf("skip=%d", p.Start>>20), fmt.Sprintf("count=%d", (p.Size+1<<20-1)>>20)).CombinedOutput(); err != nil {
		t.Fatalf("copy /perm: %v\n%s", err, out)
	}
	if err := os.Truncate(cp, p.Size); err != nil {
		t.Fatal(err)
	}
	// Only the journal: -E journal_only replays it and changes nothing else.
	if out, err := exec.Command("e2fsck", "-y", "-E", "journal_only", cp).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("journal replay of /perm: %v\n%s", err, out)
		}
	}
	return cp
}

func bootCopy(t *testing.T, img string) string {
	t.Helper()
	p := partition(t, img, 1)
	cp := filepath.Join(t.TempDir(), "boot.fat")
	if out, err := exec.Command("dd", "if="+img, "of="+cp, "bs=512", "status=none",
		fmt.Sprintf("skip=%d", p.Start/512), fmt.Sprintf("count=%d", p.Size/512)).CombinedOutput(); err != nil {
		t.Fatalf("copy the boot partition: %v\n%s", err, out)
	}
	return cp
}
