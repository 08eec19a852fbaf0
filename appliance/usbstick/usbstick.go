// Package usbstick finds a USB stick plugged into the box and mounts it
// for as long as one job (the nightly backup) writes to it.
//
// gokrazy mounts no removable storage, so a folder in the config has
// nothing real to point at on the box; this package is the box's
// "plug a stick in and it is used".
//
// # Finding a stick
//
// Every /sys/block/sd* whose device path (the symlink's target) passes
// through a USB node is a USB disk. The "removable" attribute is not used:
// most USB sticks report 0 there (it describes the medium, and a stick's
// medium is fixed). A disk with partitions is used through its first
// partition that holds a file system we know; a disk without a partition
// table (a "superfloppy", as some sticks come formatted) is used whole.
// The file system is recognised from its own first bytes (FAT, exFAT,
// ext2/3/4, NTFS), not by trying mounts: the page can then say "this stick
// is NTFS" instead of "could not mount", and nothing is written to a stick
// we do not understand. This package never formats anything.
//
// Two sticks: the one on the lowest USB port path is used (sysfs device
// path order), which stays the same when the sticks are pulled and put
// back in the same ports, unlike sda/sdb, which follow the order they
// were plugged in; the report says which one.
//
// # Mounting
//
// Mount mounts nosuid,nodev,noexec,noatime under a directory the caller
// owns, and Unmount syncs the file system (syncfs) before unmounting, so
// the stick is mounted only while a backup is written: pulling it at any
// other time loses nothing. A stick pulled while mounted leaves a mount
// whose device is gone; Unmount then detaches it lazily, and the next
// Mount clears anything left at the mount point first.
package usbstick

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Stick is one usable (or not) file system on a USB disk.
type Stick struct {
	Disk     string // sda
	Name     string // sda1, or sda for a disk without a partition table
	Dev      string // the block device, /dev/sda1
	Port     string // the USB port path in sysfs, e.g. usb1/1-1 (for choosing)
	Vendor   string // as the disk reports it, e.g. SanDisk
	Model    string
	Size     int64  // bytes of the partition (or disk)
	ReadOnly bool   // write-protected (the switch on some sticks and SD adapters)
	FS       string // vfat, exfat, ext4, ntfs; "" not recognised
	Label    string // the file system's label ("" none)
	// Supported is false when the kernel cannot mount FS (not in
	// /proc/filesystems: exFAT on a kernel built without it).
	Supported bool
	// Unreadable is why the device could not be read to recognise its
	// file system ("" it could): not root, or the stick went away.
	Unreadable string
}

// Usable says whether the box can write a backup to s.
func (s Stick) Usable() bool { return s.FS != "" && s.Supported && !s.ReadOnly && s.FS != "ntfs" }

// String names the stick for people: label (or make), size.
func (s Stick) String() string {
	name := s.Label
	if name == "" {
		name = strings.TrimSpace(s.Vendor + " " + s.Model)
	}
	if name == "" {
		name = "USB stick"
	}
	return fmt.Sprintf("%q (%s)", name, Bytes(s.Size))
}

// Bytes says n in the units a stick's box shows (decimal, as sold).
func Bytes(n int64) string {
	switch {
	case n >= 1e9:
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + " GB"
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 0, 64) + " kB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// System is where the kernel's views are: "/" on the box; a test passes a
// directory holding a fake sys/, proc/filesystems and dev/.
type System struct {
	Sys  string // /sys
	Proc string // /proc
	Dev  string // /dev
}

// Host is the running machine.
var Host = System{Sys: "/sys", Proc: "/proc", Dev: "/dev"}

// Find lists the file systems on the USB disks plugged in now, in the
// order Choose prefers them. A USB disk with no medium (a card reader
// without a card) is left out.
func (sy System) Find() ([]Stick, error) {
	disks, err := filepath.Glob(filepath.Join(sy.Sys, "block", "sd*"))
	if err != nil {
		return nil, err
	}
	known := sy.kernelFS()
	type found struct {
		Stick
		path string
	}
	var all []found
	for _, d := range disks {
		target, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		port, ok := usbPort(target)
		if !ok {
			continue // SATA, virtio-scsi, ...: not a stick
		}
		disk := filepath.Base(d)
		size := sectors(filepath.Join(d, "size"))
		if size == 0 {
			continue
		}
		base := Stick{Disk: disk, Port: port,
			Vendor:   readTrim(filepath.Join(d, "device", "vendor")),
			Model:    readTrim(filepath.Join(d, "device", "model")),
			ReadOnly: readTrim(filepath.Join(d, "ro")) == "1"}
		parts, _ := filepath.Glob(filepath.Join(d, disk+"*"))
		sort.Slice(parts, func(i, j int) bool { return partNum(parts[i]) < partNum(parts[j]) })
		var cands []Stick
		for _, p := range parts {
			if _, err := os.Stat(filepath.Join(p, "partition")); err != nil {
				continue
			}
			s := base
			s.Name, s.Size = filepath.Base(p), sectors(filepath.Join(p, "size"))
			s.ReadOnly = s.ReadOnly || readTrim(filepath.Join(p, "ro")) == "1"
			cands = append(cands, s)
		}
		if len(cands) == 0 {
			s := base
			s.Name, s.Size = disk, size
			cands = append(cands, s)
		}
		// The first partition with a file system we know; if none, the
		// first partition (so the report can say what it is).
		var pick *Stick
		for i := range cands {
			s := &cands[i]
			s.Dev = filepath.Join(sy.Dev, s.Name)
			s.FS, s.Label, s.Unreadable = probe(s.Dev)
			s.Supported = s.FS != "" && known[s.FS]
			if pick == nil && s.FS != "" && s.FS != "ntfs" {
				pick = s
			}
		}
		if pick == nil {
			pick = &cands[0]
		}
		all = append(all, found{*pick, target})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Port != all[j].Port {
			return portLess(all[i].Port, all[j].Port)
		}
		return all[i].Disk < all[j].Disk
	})
	out := make([]Stick, len(all))
	for i, f := range all {
		out[i] = f.Stick
	}
	return out, nil
}

// Errors Choose returns; the page shows them as they are.
var (
	ErrNone     = errors.New("no USB stick is plugged in")
	ErrReadOnly = errors.New("the USB stick is read-only (is its write-protect switch on?)")
)

// Choose picks the stick to write to from Find's list: the first usable
// one. note says which one when there were several, or why the others
// were passed over. err says why none can be used.
func Choose(sticks []Stick) (s Stick, note string, err error) {
	if len(sticks) == 0 {
		return Stick{}, "", ErrNone
	}
	for i, c := range sticks {
		if !c.Usable() {
			continue
		}
		if len(sticks) > 1 {
			var others []string
			for j, o := range sticks {
				if j != i {
					others = append(others, o.String()+": "+Problem(o, "not used"))
				}
			}
			note = fmt.Sprintf("%d USB sticks are plugged in; the backup goes to %s (%s). Others: %s.",
				len(sticks), c.String(), c.Port, strings.Join(others, "; "))
		}
		return c, note, nil
	}
	// None usable: say why about the first.
	return Stick{}, "", errors.New(Problem(sticks[0], ""))
}

// Problem says in plain words why s cannot be written to (ok if it can).
func Problem(s Stick, ok string) string {
	switch {
	case s.Unreadable != "":
		return fmt.Sprintf("the box cannot read the USB stick %s (%s)", s, s.Unreadable)
	case s.FS == "":
		return fmt.Sprintf("the USB stick %s has no file system the box knows (FAT32, exFAT or ext4); the box never formats a stick: format it as FAT32 on a computer", s)
	case s.FS == "ntfs":
		return fmt.Sprintf("the USB stick %s is formatted as NTFS, which the box does not write to; format it as FAT32 on a computer", s)
	case !s.Supported:
		return fmt.Sprintf("the USB stick %s is formatted as %s, which this box cannot read; format it as FAT32 on a computer", s, fsName(s.FS))
	case s.ReadOnly:
		return fmt.Sprintf("the USB stick %s is read-only (is its write-protect switch on?)", s)
	}
	return ok
}

func fsName(fs string) string {
	switch fs {
	case "vfat":
		return "FAT"
	case "exfat":
		return "exFAT"
	case "ext4":
		return "ext2/3/4"
	}
	return fs
}

// kernelFS reads /proc/filesystems (built-in and loaded file systems).
func (sy System) kernelFS() map[string]bool {
	b, _ := os.ReadFile(filepath.Join(sy.Proc, "filesystems"))
	m := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			m[f[len(f)-1]] = true
		}
	}
	return m
}

// usbPort returns the USB part of a sysfs device path
// (…/usb1/1-1/1-1:1.0/host0/… -> usb1/1-1) and whether there is one.
func usbPort(target string) (string, bool) {
	parts := strings.Split(filepath.ToSlash(target), "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "usb") && len(p) > 3 && isDigits(p[3:]) {
			port := []string{p}
			for _, q := range parts[i+1:] {
				if strings.Contains(q, ":") || !strings.Contains(q, "-") {
					break // an interface (1-1:1.0) or the SCSI host ends the port path
				}
				port = append(port, q)
			}
			return strings.Join(port, "/"), true
		}
	}
	return "", false
}

// portLess orders port paths numerically (usb1/1-2 before usb1/1-10).
func portLess(a, b string) bool {
	ka, kb := portKey(a), portKey(b)
	for i := 0; i < len(ka) && i < len(kb); i++ {
		if ka[i] != kb[i] {
			return ka[i] < kb[i]
		}
	}
	return len(ka) < len(kb)
}

func portKey(s string) []int {
	var k []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		k = append(k, n)
	}
	return k
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func partNum(p string) int {
	n, _ := strconv.Atoi(readTrim(filepath.Join(p, "partition")))
	return n
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

// sectors reads a sysfs size (always in 512-byte units) as bytes.
func sectors(p string) int64 {
	n, _ := strconv.ParseInt(readTrim(p), 10, 64)
	return n * 512
}

// probe recognises the file system on dev from its first bytes.
func probe(dev string) (fs, label, unreadable string) {
	f, err := os.Open(dev)
	if err != nil {
		return "", "", err.Error()
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, 0)
	buf = buf[:n]
	fs, label = Recognise(buf)
	if fs == "exfat" {
		label = exfatLabel(f, buf)
	}
	return fs, label, ""
}

// Recognise names the file system whose first 4 KiB are b and its label
// (exFAT's label is in its root directory: see probe).
func Recognise(b []byte) (fs, label string) {
	if len(b) >= 2048 && binary.LittleEndian.Uint16(b[1024+0x38:]) == 0xEF53 {
		return "ext4", cstr(b[1024+0x78 : 1024+0x88])
	}
	if len(b) < 512 {
		return "", ""
	}
	switch {
	case string(b[3:11]) == "EXFAT   ":
		return "exfat", ""
	case string(b[3:11]) == "NTFS    ":
		return "ntfs", ""
	case b[510] != 0x55 || b[511] != 0xAA:
		return "", ""
	case string(b[0x52:0x57]) == "FAT32":
		return "vfat", fatLabel(b[0x47:0x52])
	case string(b[0x36:0x39]) == "FAT":
		return "vfat", fatLabel(b[0x2B:0x36])
	}
	return "", ""
}

func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " \x00")
	if l == "NO NAME" {
		return ""
	}
	return l
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// exfatLabel reads the volume label entry (type 0x83) from the first
// cluster of exFAT's root directory.
func exfatLabel(f *os.File, boot []byte) string {
	if len(boot) < 0x70 {
		return ""
	}
	heap := int64(binary.LittleEndian.Uint32(boot[0x58:]))
	root := int64(binary.LittleEndian.Uint32(boot[0x60:]))
	bps, spc := uint(boot[0x6C]), uint(boot[0x6D])
	if bps < 9 || bps > 12 || spc > 25 || root < 2 {
		return ""
	}
	off := (heap + (root-2)<<spc) << bps
	dir := make([]byte, min(int64(1)<<(bps+spc), 64<<10))
	n, _ := f.ReadAt(dir, off)
	for i := 0; i+32 <= n; i += 32 {
		e := dir[i : i+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0x83 {
			c := min(int(e[1]), 11)
			u := make([]uint16, c)
			for j := range u {
				u[j] = binary.LittleEndian.Uint16(e[2+2*j:])
			}
			return string(utf16.Decode(u))
		}
	}
	return ""
}
