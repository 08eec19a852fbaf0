package update

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kernel command line flags of gokrazy's trial boot. With tryFlag set, the
// init of the running root rewrites it to switchedFlag and then switches
// into the inactive root for this one boot; cmdline.txt still names the old
// root, so any later boot — after a hang, a watchdog reset or a crash — is
// the old version again unless the new one commits.
//
// gokrazy's own /update/testboot cannot set tryFlag: it inserts the flag
// before a trailing newline that gok does not write, so it changes nothing.
// We edit cmdline.txt ourselves, in place, using the space padding gok
// leaves at its end.
const (
	tryFlag      = "gokrazy.try_boot_inactive=1"
	switchedFlag = "gokrazy.switch_on_boot=1"
)

// BootConfig edits cmdline.txt on the FAT boot partition in place: same
// offset, same length. gokrazy's MBR boot code reads the file by its block
// address, so it must never move.
type BootConfig struct {
	Device string // the boot partition, e.g. /dev/mmcblk0p1; found from /perm if empty
}

// bootDevice derives the boot partition (number 1) from /perm's (number 4).
func bootDevice() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[1] != "/perm" {
			continue
		}
		dev := fields[0]
		if p, err := filepath.EvalSymlinks(dev); err == nil {
			dev = p
		}
		if !strings.HasSuffix(dev, "4") {
			return "", fmt.Errorf("boot device: /perm is on %s, not partition 4", dev)
		}
		return strings.TrimSuffix(dev, "4") + "1", nil
	}
	return "", errors.New("boot device: /perm is not mounted")
}

func (b *BootConfig) device() (string, error) {
	if b.Device != "" {
		return b.Device, nil
	}
	return bootDevice()
}

// Read returns cmdline.txt's bytes.
func (b *BootConfig) Read() (string, error) {
	dev, err := b.device()
	if err != nil {
		return "", err
	}
	f, err := os.Open(dev)
	if err != nil {
		return "", fmt.Errorf("cmdline: %w", err)
	}
	defer f.Close()
	off, n, err := fatFileExtent(f, "CMDLINE TXT")
	if err != nil {
		return "", fmt.Errorf("cmdline: %w", err)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		return "", fmt.Errorf("cmdline: %w", err)
	}
	return string(buf), nil
}

// edit rewrites cmdline.txt's tokens through fn, keeping its length.
func (b *BootConfig) edit(fn func(tokens []string) ([]string, error)) error {
	dev, err := b.device()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cmdline: %w", err)
	}
	defer f.Close()
	off, n, err := fatFileExtent(f, "CMDLINE TXT")
	if err != nil {
		return fmt.Errorf("cmdline: %w", err)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("cmdline: %w", err)
	}
	out, err := rewriteCmdline(string(buf), fn)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(out), off); err != nil {
		return fmt.Errorf("cmdline: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cmdline: %w", err)
	}
	return f.Close()
}

// rewriteCmdline applies fn to the whitespace-separated tokens of old and
// pads the result with spaces to old's length (a trailing newline stays
// last). It fails rather than grow the file.
func rewriteCmdline(old string, fn func([]string) ([]string, error)) (string, error) {
	nl := strings.HasSuffix(old, "\n")
	toks, err := fn(strings.Fields(old))
	if err != nil {
		return "", err
	}
	s := strings.Join(toks, " ")
	room := len(old)
	if nl {
		room--
	}
	if len(s) > room {
		return "", fmt.Errorf("cmdline: %d bytes do not fit the %d of cmdline.txt", len(s), room)
	}
	s += strings.Repeat(" ", room-len(s))
	if nl {
		s += "\n"
	}
	return s, nil
}

func without(toks []string, drop ...string) []string {
	var out []string
	for _, t := range toks {
		keep := true
		for _, d := range drop {
			if t == d {
				keep = false
			}
		}
		if keep {
			out = append(out, t)
		}
	}
	return out
}

// EnableTrial makes the next boot run the inactive root once.
func (b *BootConfig) EnableTrial() error {
	return b.edit(func(toks []string) ([]string, error) {
		if !containsPrefix(toks, "root=") {
			return nil, errors.New("cmdline: no root= in cmdline.txt")
		}
		return append(without(toks, tryFlag, switchedFlag), tryFlag), nil
	})
}

// ClearTrial removes both trial flags.
func (b *BootConfig) ClearTrial() error {
	return b.edit(func(toks []string) ([]string, error) {
		return without(toks, tryFlag, switchedFlag), nil
	})
}

// TrialState says which trial flag cmdline.txt carries: "pending" (the next
// boot is the trial), "started" (a trial boot happened and did not commit)
// or "".
func (b *BootConfig) TrialState() (string, error) {
	s, err := b.Read()
	if err != nil {
		return "", err
	}
	toks := strings.Fields(s)
	switch {
	case contains(toks, tryFlag):
		return "pending", nil
	case contains(toks, switchedFlag):
		return "started", nil
	}
	return "", nil
}

func contains(toks []string, s string) bool {
	for _, t := range toks {
		if t == s {
			return true
		}
	}
	return false
}

func containsPrefix(toks []string, p string) bool {
	for _, t := range toks {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// fatFileExtent finds a file in the root directory of a FAT16 or FAT32 file
// system and returns its byte offset and length. It insists the file is
// contiguous, which gok's FAT writer guarantees and in-place edits need.
func fatFileExtent(f *os.File, name83 string) (int64, int64, error) {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, 0); err != nil {
		return 0, 0, err
	}
	le := binary.LittleEndian
	bps := int64(le.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(le.Uint16(bs[14:]))
	nFATs := int64(bs[16])
	rootEntries := int64(le.Uint16(bs[17:]))
	fatSectors := int64(le.Uint16(bs[22:]))
	fat32 := fatSectors == 0
	if fat32 {
		fatSectors = int64(le.Uint32(bs[36:]))
	}
	if bps != 512 || spc == 0 || nFATs == 0 || bs[510] != 0x55 || bs[511] != 0xAA {
		return 0, 0, errors.New("not a FAT file system")
	}
	fatOff := reserved * bps
	rootDirOff := (reserved + nFATs*fatSectors) * bps
	firstData := reserved + nFATs*fatSectors + (rootEntries*32+bps-1)/bps
	clusterSize := spc * bps
	clusterOff := func(c int64) int64 { return (firstData + (c-2)*spc) * bps }
	next := func(c int64) (int64, error) {
		if fat32 {
			b := make([]byte, 4)
			_, err := f.ReadAt(b, fatOff+c*4)
			return int64(le.Uint32(b) & 0x0FFFFFFF), err
		}
		b := make([]byte, 2)
		_, err := f.ReadAt(b, fatOff+c*2)
		return int64(le.Uint16(b)), err
	}
	var dir []byte
	if fat32 {
		// The root directory is a cluster chain; a few clusters suffice here.
		for c, i := int64(le.Uint32(bs[44:])), 0; c >= 2 && c < 0x0FFFFFF8 && i < 64; i++ {
			b := make([]byte, clusterSize)
			if _, err := f.ReadAt(b, clusterOff(c)); err != nil {
				return 0, 0, err
			}
			dir = append(dir, b...)
			var err error
			if c, err = next(c); err != nil {
				return 0, 0, err
			}
		}
	} else {
		dir = make([]byte, rootEntries*32)
		if _, err := f.ReadAt(dir, rootDirOff); err != nil {
			return 0, 0, err
		}
	}
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 || e[11]&0x08 != 0 || e[11] == 0x0F {
			continue // deleted, volume label, long name part
		}
		// gok writes short names in lower case, mtools in upper case.
		if !strings.EqualFold(string(e[:11]), name83) {
			continue
		}
		first := int64(le.Uint16(e[26:])) | int64(le.Uint16(e[20:]))<<16
		size := int64(le.Uint32(e[28:]))
		c := first
		for covered := clusterSize; covered < size; covered += clusterSize {
			n, err := next(c)
			if err != nil {
				return 0, 0, err
			}
			if n != c+1 {
				return 0, 0, fmt.Errorf("%s is fragmented", strings.TrimSpace(name83))
			}
			c = n
		}
		return clusterOff(first), size, nil
	}
	return 0, 0, fmt.Errorf("%s not found in the root directory", strings.TrimSpace(name83))
}
