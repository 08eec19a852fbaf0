package usbstick

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Mounted is a stick mounted at Dir until Unmount.
type Mounted struct {
	Stick Stick
	Dir   string
}

// flags: nothing on a stick that left the house may run or act as a
// device or a set-uid program; noatime spares the stick a write per read.
const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME

// options per file system: files only root can read (the backup is
// encrypted, but its name says whose box it is), UTF-8 names on FAT, and
// FAT turning read-only on a damaged file system rather than writing on.
// If the kernel refuses an option (EINVAL: an NLS table not built in),
// Mount tries again without options.
var options = map[string]string{
	"vfat":  "fmask=0077,dmask=0077,utf8=1,shortname=mixed,errors=remount-ro",
	"exfat": "fmask=0077,dmask=0077",
	"ext4":  "errors=remount-ro",
}

// Mount mounts s at dir (created 0700), clearing anything a pulled stick
// left mounted there. The caller must Unmount.
func Mount(s Stick, dir string) (*Mounted, error) {
	if !s.Usable() {
		return nil, errors.New(Problem(s, "cannot be used"))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("usb stick: %w", err)
	}
	clearMount(dir)
	err := unix.Mount(s.Dev, dir, s.FS, flags, options[s.FS])
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount(s.Dev, dir, s.FS, flags, "")
	}
	switch {
	case errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) && s.ReadOnly:
		return nil, ErrReadOnly
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) && fileMissing(s.Dev):
		return nil, fmt.Errorf("the USB stick %s was pulled out (or its device %s is missing)", s, s.Dev)
	case err != nil:
		return nil, fmt.Errorf("the USB stick %s could not be opened (%s on %s: %w); is the file system damaged? A computer can check it", s, fsName(s.FS), s.Dev, err)
	}
	return &Mounted{Stick: s, Dir: dir}, nil
}

func fileMissing(p string) bool {
	_, err := os.Stat(p)
	return errors.Is(err, os.ErrNotExist)
}

// clearMount unmounts whatever is mounted at dir (a stick pulled while a
// backup ran, in a process that then died). A dir that is no mount point
// is left alone.
func clearMount(dir string) {
	for range 4 { // stacked mounts, each one a failed run
		if !isMountPoint(dir) {
			return
		}
		if unix.Unmount(dir, 0) != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}
}

func isMountPoint(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// Free is the space left on the stick, and its file system's size.
func (m *Mounted) Free() (free, size int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(m.Dir, &st); err != nil {
		return 0, 0, fmt.Errorf("usb stick: %w", err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}

// Unmount writes everything to the stick (syncfs: the file system's
// dirty data and metadata, FAT tables included, which the backup's own
// fsyncs do not all cover) and unmounts it. If the stick was pulled the
// sync fails and the mount is detached so the next Mount starts clean;
// the error says the stick was pulled.
func (m *Mounted) Unmount() error {
	var serr error
	if fd, err := unix.Open(m.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		serr = unix.Syncfs(fd)
		unix.Close(fd)
	} else {
		serr = err
	}
	uerr := unix.Unmount(m.Dir, 0)
	if uerr != nil {
		uerr = unix.Unmount(m.Dir, unix.MNT_DETACH)
	}
	switch {
	case serr != nil:
		return fmt.Errorf("the USB stick %s could not be written to the end (pulled out?): %w", m.Stick, serr)
	case uerr != nil:
		return fmt.Errorf("the USB stick %s could not be unmounted: %w", m.Stick, uerr)
	}
	return nil
}
