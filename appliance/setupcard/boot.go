package setupcard

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteBoot puts Text(code) into hearth-setup.txt on the FAT boot
// partition dev, unless the file already holds it (a box from an image its
// owner built, or any later boot). gokrazy does not mount the boot
// partition: it is mounted here for the moment of the write and unmounted
// again. It is mounted read-only first and only switched to read-write
// when the file must change, because a read-write mount of FAT writes the
// partition's boot sector (its dirty flag) on mount and unmount, and that
// sector is what the Pi's firmware reads first. The file is written beside
// the old one and renamed over it, then synced: the card holds the old
// text or the new, and the files the boot loader reads by block address
// (gokrazy's MBR code finds vmlinuz and cmdline.txt that way) never move.
//
// The update agent edits cmdline.txt in place through the same block
// device (appliance/update.BootConfig), so its writes and ours meet in one
// page cache and touch different blocks.
func WriteBoot(dev, code string) (written bool, err error) {
	dir, err := os.MkdirTemp("", "hearth-boot")
	if err != nil {
		return false, fmt.Errorf("boot partition: %w", err)
	}
	defer os.Remove(dir)
	// Both gokrazy kernels have vfat, cp437 and ascii built in (not
	// iso8859-1 on the Pi's): name them rather than rely on defaults.
	const opts = "codepage=437,iocharset=ascii"
	flags := uintptr(unix.MS_NOATIME | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOSUID)
	if err := unix.Mount(dev, dir, "vfat", flags|unix.MS_RDONLY, opts); err != nil {
		return false, fmt.Errorf("boot partition: mount %s: %w", dev, err)
	}
	defer func() {
		if uerr := unix.Unmount(dir, 0); uerr != nil && err == nil {
			err = fmt.Errorf("boot partition: unmount %s: %w", dev, uerr)
		}
	}()
	data := []byte(Text(code))
	if old, err := os.ReadFile(filepath.Join(dir, FileName)); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := unix.Mount(dev, dir, "vfat", flags|unix.MS_REMOUNT, opts); err != nil {
		return false, fmt.Errorf("boot partition: remount %s read-write: %w", dev, err)
	}
	return writeFile(dir, data)
}

func writeFile(dir string, data []byte) (bool, error) {
	path := filepath.Join(dir, FileName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("boot partition: %w", err)
	}
	// An upper-case 8.3 name takes one root directory slot (a long name
	// takes three): gok sizes the FAT16 root directory to its files, and
	// the VM image has two slots free.
	tmp := filepath.Join(dir, "HEARTH.NEW")
	err := writeSync(tmp, data)
	if err == nil {
		// vfat renames onto an existing name by reusing its slot.
		err = os.Rename(tmp, path)
	} else if errors.Is(err, unix.ENOSPC) {
		// No slot for the temporary file: rewrite the file in place.
		// A cut now leaves it short, and the next boot, which compares
		// it with the code on /perm, writes it again.
		os.Remove(tmp)
		err = writeSync(path, data)
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("boot partition: write %s: %w", FileName, err)
	}
	syncDir(dir)
	return true, nil
}

// Console shows the code on the box's console (a screen plugged into a
// Pi, the VM's serial port). gokrazy keeps programs' output in memory for
// its web page, which is off on a Hearth box, so it goes to /dev/console.
func Console(code string) error {
	f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "\r\n\r\n%s\r\n", Text(code))
	return err
}

func writeSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
