package usbstick

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

// The fake machine is built per test in a temporary directory rather
// than kept in testdata: sysfs is made of symlinks (block/sda ->
// ../devices/…/usb1/1-2/…/block/sda) and the "devices" are file-system
// images made by the real mkfs tools (dosfstools, e2fsprogs: mk/image.mk's
// APT_TEST_PKGS), which are larger than the repository should hold.

type fakeDisk struct {
	name   string // sda
	path   string // the sysfs device path up to block/, "" a USB one on port
	port   string // e.g. 1-2 (USB)
	size   int64  // sectors; 0 a card reader without a card
	ro     bool
	parts  []string // partition images (nil: the disk itself is img)
	img    []byte   // the whole disk's first bytes (no partitions)
	vendor string
}

func fakeSystem(t *testing.T, fs string, disks ...fakeDisk) System {
	t.Helper()
	root := t.TempDir()
	sy := System{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev")}
	for _, d := range []string{filepath.Join(sy.Sys, "block"), sy.Proc, sy.Dev} {
		must(t, os.MkdirAll(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(sy.Proc, "filesystems"), []byte(fs), 0o644))
	for _, d := range disks {
		dev := d.path
		if dev == "" {
			dev = "devices/pci0000:00/0000:00:14.0/usb1/" + d.port + "/" + d.port + ":1.0/host0/target0:0:0/0:0:0:0"
		}
		dir := filepath.Join(sy.Sys, dev, "block", d.name)
		must(t, os.MkdirAll(filepath.Join(sy.Sys, dev, "block", d.name), 0o755))
		must(t, os.Symlink(filepath.Join("..", dev, "block", d.name), filepath.Join(sy.Sys, "block", d.name)))
		write := func(p, s string) { must(t, os.WriteFile(p, []byte(s+"\n"), 0o644)) }
		write(filepath.Join(dir, "size"), itoa(d.size))
		write(filepath.Join(dir, "ro"), map[bool]string{true: "1", false: "0"}[d.ro])
		must(t, os.Symlink(filepath.Join("..", ".."), filepath.Join(dir, "device")))
		write(filepath.Join(sy.Sys, dev, "vendor"), d.vendor+"  ")
		write(filepath.Join(sy.Sys, dev, "model"), "Cruzer Blade    ")
		for i, img := range d.parts {
			p := filepath.Join(dir, d.name+itoa(int64(i+1)))
			must(t, os.MkdirAll(p, 0o755))
			write(filepath.Join(p, "partition"), itoa(int64(i+1)))
			write(filepath.Join(p, "size"), itoa(fileSize(t, img)/512))
			write(filepath.Join(p, "ro"), "0")
			must(t, os.Symlink(img, filepath.Join(sy.Dev, d.name+itoa(int64(i+1)))))
		}
		if d.parts == nil {
			must(t, os.WriteFile(filepath.Join(sy.Dev, d.name), d.img, 0o644))
		}
	}
	return sy
}

// TestFind: USB disks are found through the usb node in their sysfs path
// (a SATA disk is not a stick; "removable" is not read), a card reader
// without a card is left out, the first partition with a known file
// system is used, a disk without partitions is used whole, labels come
// from the file systems made by the real mkfs tools, and the order is the
// USB port's (1-2 before 1-10), not the sdX name's.
func TestFind(t *testing.T) {
	fat := mkfs(t, "mkfs.vfat", 64<<20, "-F", "32", "-n", "HEARTH")
	fat16 := mkfs(t, "mkfs.vfat", 16<<20, "-F", "16", "-n", "CLUB")
	ext := mkfs(t, "mkfs.ext4", 8<<20, "-q", "-F", "-L", "backups")
	junk := filepath.Join(t.TempDir(), "junk")
	must(t, os.WriteFile(junk, make([]byte, 1<<20), 0o644))
	extBytes := readHead(t, ext)
	sy := fakeSystem(t, "nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tvfat\n",
		fakeDisk{name: "sda", path: "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0", size: 1 << 21, parts: []string{fat16}},
		fakeDisk{name: "sdb", port: "1-10", size: 1 << 16, vendor: "Intenso", parts: []string{junk, fat}},
		fakeDisk{name: "sdc", port: "1-2", size: 1 << 14, vendor: "SanDisk", img: extBytes},
		fakeDisk{name: "sdd", port: "1-3", size: 0, vendor: "Generic"},
	)
	got, err := sy.Find()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("found %d sticks, want sdc and sdb: %+v", len(got), got)
	}
	c, b := got[0], got[1]
	if c.Name != "sdc" || c.FS != "ext4" || c.Label != "backups" || c.Port != "usb1/1-2" || c.Size != 1<<14*512 || !c.Usable() {
		t.Errorf("whole-disk ext4 stick: %+v", c)
	}
	if b.Name != "sdb2" || b.FS != "vfat" || b.Label != "HEARTH" || b.Vendor != "Intenso" || b.Dev != filepath.Join(sy.Dev, "sdb2") || !b.Usable() {
		t.Errorf("FAT32 in the second partition: %+v", b)
	}
	s, note, err := Choose(got)
	if err != nil || s.Name != "sdc" || !strings.Contains(note, "2 USB sticks") || !strings.Contains(note, `"backups"`) || !strings.Contains(note, `"HEARTH"`) {
		t.Errorf("choose: %+v %q %v", s, note, err)
	}
	if want := `"backups" (8.4 MB)`; c.String() != want {
		t.Errorf("String() = %q, want %q", c.String(), want)
	}
}

// TestProblems: no stick, a read-only one, one without a file system we
// know, NTFS, and exFAT on a kernel without it each get their own words;
// a usable stick after an unusable one is chosen.
func TestProblems(t *testing.T) {
	if _, _, err := Choose(nil); err != ErrNone || err.Error() != "no USB stick is plugged in" {
		t.Errorf("no stick: %v", err)
	}
	fat := readHead(t, mkfs(t, "mkfs.vfat", 4<<20, "-n", "RO"))
	ntfs := make([]byte, 4096)
	copy(ntfs[3:], "NTFS    ")
	exfat := exfatImage("Familie")
	cases := []struct {
		disk fakeDisk
		fs   string
		want string
	}{
		{fakeDisk{name: "sda", port: "1-1", size: 8192, ro: true, img: fat}, "\tvfat\n", `the USB stick "RO" (4.2 MB) is read-only`},
		{fakeDisk{name: "sda", port: "1-1", size: 8192, img: make([]byte, 4096), vendor: "Kingston"}, "\tvfat\n", `"Kingston Cruzer Blade" (4.2 MB) has no file system the box knows`},
		{fakeDisk{name: "sda", port: "1-1", size: 8192, img: ntfs}, "\tvfat\n", "is formatted as NTFS"},
		{fakeDisk{name: "sda", port: "1-1", size: 8192, img: exfat}, "\tvfat\n", `the USB stick "Familie" (4.2 MB) is formatted as exFAT, which this box cannot read`},
	}
	for _, c := range cases {
		got, err := fakeSystem(t, c.fs, c.disk).Find()
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v %+v", c.want, err, got)
		}
		_, _, err = Choose(got)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
		if strings.Contains(c.want, "exFAT") { // the same stick, a kernel with exFAT
			got, _ = fakeSystem(t, "\tvfat\n\texfat\n", c.disk).Find()
			if s, _, err := Choose(got); err != nil || s.FS != "exfat" || s.Label != "Familie" {
				t.Errorf("exFAT with a kernel that has it: %+v %v", s, err)
			}
		}
	}
	// A device node the box cannot open (not root, or gone): said so,
	// not "no file system".
	sy0 := fakeSystem(t, "\tvfat\n", fakeDisk{name: "sda", port: "1-1", size: 8192, img: fat})
	os.Remove(filepath.Join(sy0.Dev, "sda"))
	got0, _ := sy0.Find()
	if _, _, err := Choose(got0); err == nil || !strings.Contains(err.Error(), "the box cannot read the USB stick") {
		t.Errorf("unreadable device: %v", err)
	}
	// A read-only stick on port 1-1 and a good one on 1-4: the good one.
	sy := fakeSystem(t, "\tvfat\n",
		fakeDisk{name: "sdb", port: "1-1", size: 8192, ro: true, img: fat},
		fakeDisk{name: "sda", port: "1-4", size: 8192, img: fat})
	got, _ := sy.Find()
	s, note, err := Choose(got)
	if err != nil || s.Name != "sda" || !strings.Contains(note, "read-only") {
		t.Errorf("read-only and good: %+v %q %v", s, note, err)
	}
}

func TestUSBPort(t *testing.T) {
	for in, want := range map[string]string{
		"/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.4/2-1.4:1.0/host3/target3:0:0/3:0:0:0/block/sdb":   "usb2/2-1/2-1.4",
		"/sys/devices/platform/soc/3f980000.usb/usb1/1-1/1-1.3/1-1.3:1.0/host0/target0:0:0/0:0:0:0/block/sda": "usb1/1-1/1-1.3",
		"/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda":                       "",
	} {
		got, ok := usbPort(in)
		if got != want || ok != (want != "") {
			t.Errorf("usbPort(%s) = %q %v, want %q", in, got, ok, want)
		}
	}
	if !portLess("usb1/1-2", "usb1/1-10") || portLess("usb2/2-1", "usb1/1-3") {
		t.Error("ports are not in numeric order")
	}
}

// exfatImage is an exFAT boot sector and a root directory holding a
// volume label entry (type 0x83), laid out as the exFAT specification
// says: 512-byte sectors, 8 sectors a cluster, the cluster heap at sector
// 32, the root directory in cluster 4.
func exfatImage(label string) []byte {
	b := make([]byte, 64<<10)
	copy(b[3:], "EXFAT   ")
	binary.LittleEndian.PutUint32(b[0x58:], 32)
	binary.LittleEndian.PutUint32(b[0x60:], 4)
	b[0x6C], b[0x6D] = 9, 3
	b[510], b[511] = 0x55, 0xAA
	root := (32 + (4-2)*8) * 512
	copy(b[root:], []byte{0x81}) // allocation bitmap entry first
	e := b[root+32:]
	u := utf16.Encode([]rune(label))
	e[0], e[1] = 0x83, byte(len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(e[2+2*i:], c)
	}
	return b
}

func mkfs(t *testing.T, tool string, size int64, args ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fs.img")
	f, err := os.Create(p)
	must(t, err)
	must(t, f.Truncate(size))
	f.Close()
	bin, err := exec.LookPath(tool)
	if err != nil {
		bin = filepath.Join("/usr/sbin", tool) // not on a user's PATH on Debian
	}
	if out, err := exec.Command(bin, append(args, p)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s (make test-deps installs dosfstools and e2fsprogs)", tool, err, out)
	}
	return p
}

func readHead(t *testing.T, p string) []byte {
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	b := make([]byte, 64<<10)
	n, _ := f.ReadAt(b, 0)
	return b[:n]
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	must(t, err)
	return fi.Size()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
