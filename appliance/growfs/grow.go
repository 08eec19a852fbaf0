package growfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Result says what Grow found and did.
type Result struct {
	Disk, Partition string // e.g. /dev/vda, /dev/vda4
	TableGrown      bool   // the GPT entry was moved now
	Bytes           int64  // the partition's size afterwards
	BlocksBefore    uint64 // file system size (statfs blocks of Bsize) before
	BlocksAfter     uint64
}

// Grow grows the partition mounted at mount and its ext4 file system to
// the end of the disk. step is called with "backup", "array", "header"
// (GPT writes, each on the disk), "kernel" (the kernel knows the new
// size), "resize" (just before the file-system resize) and "resized"
// (the resize is on the disk).
func Grow(mount string, step func(string)) (Result, error) {
	if step == nil {
		step = func(string) {}
	}
	var r Result
	part, err := mountDevice(mount)
	if err != nil {
		return r, err
	}
	disk, num, err := parentDisk(part)
	if err != nil {
		return r, err
	}
	r.Disk, r.Partition = "/dev/"+disk, "/dev/"+part
	f, err := os.OpenFile(r.Disk, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return r, fmt.Errorf("grow: %w", err)
	}
	defer f.Close()
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		err = e
		return r, fmt.Errorf("grow: size of %s: %w", r.Disk, err)
	}
	span, grown, err := GrowGPT(f, size/sector, num, step)
	if err != nil {
		return r, fmt.Errorf("grow: %s: %w", r.Disk, err)
	}
	r.TableGrown, r.Bytes = grown, span.Bytes()

	// The kernel keeps the size it read at boot; a mounted partition's
	// table cannot be re-read (BLKRRPART says EBUSY), but BLKPG resizes
	// one partition in place.
	if known, err := sysfsSectors(part); err != nil {
		return r, err
	} else if known != span.Last-span.First+1 {
		if err := blkpgResize(f, num, span); err != nil {
			return r, fmt.Errorf("grow: tell the kernel %s is %d bytes: %w", r.Partition, span.Bytes(), err)
		}
	}
	step("kernel")

	var st unix.Statfs_t
	if err := unix.Statfs(mount, &st); err != nil {
		return r, fmt.Errorf("grow: statfs %s: %w", mount, err)
	}
	r.BlocksBefore = st.Blocks
	bsize := uint64(st.Bsize)
	want := uint64(span.Bytes()) / bsize
	step("resize")
	// Idempotent: the kernel returns at once when the file system already
	// has want blocks.
	d, err := os.Open(mount)
	if err != nil {
		return r, fmt.Errorf("grow: %w", err)
	}
	defer d.Close()
	if err := ext4Resize(d, want); err != nil {
		return r, fmt.Errorf("grow: resize the file system on %s to %d blocks: %w", mount, want, err)
	}
	// The resize is journaled but committed up to 5 s later: make it
	// durable now, so "done" on the console means done.
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return r, fmt.Errorf("grow: sync %s: %w", mount, err)
	}
	step("resized")
	if err := unix.Statfs(mount, &st); err == nil {
		r.BlocksAfter = st.Blocks
	}
	return r, nil
}

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64).
const ext4IocResizeFS = 0x40086610

func ext4Resize(d *os.File, blocks uint64) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&blocks)))
	if e != 0 {
		return e
	}
	return nil
}

// blkpgPartition and blkpgIoctlArg are struct blkpg_partition and struct
// blkpg_ioctl_arg of <linux/blkpg.h>.
type blkpgPartition struct {
	Start, Length int64
	Pno           int32
	Devname       [64]byte
	Volname       [64]byte
	_             [4]byte
}

type blkpgIoctlArg struct {
	Op, Flags, Datalen int32
	_                  [4]byte
	Data               *blkpgPartition
}

const (
	blkpg              = 0x1269
	blkpgResizePartion = 3
)

func blkpgResize(disk *os.File, num int, s Span) error {
	p := blkpgPartition{Start: int64(s.First) * sector, Length: s.Bytes(), Pno: int32(num)}
	a := blkpgIoctlArg{Op: blkpgResizePartion, Datalen: int32(unsafe.Sizeof(p)), Data: &p}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), blkpg, uintptr(unsafe.Pointer(&a)))
	if e != 0 {
		return e
	}
	return nil
}

// mountDevice returns the kernel name of the block device mounted at mount
// ("vda4"), from /proc/self/mountinfo's major:minor.
func mountDevice(mount string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("grow: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) > 4 && fs[4] == mount {
			link, err := os.Readlink("/sys/dev/block/" + fs[2])
			if err != nil {
				return "", fmt.Errorf("grow: device of %s: %w", mount, err)
			}
			return filepath.Base(link), nil
		}
	}
	return "", fmt.Errorf("grow: %s is not mounted", mount)
}

// parentDisk returns the disk a partition is on and its number.
func parentDisk(part string) (string, int, error) {
	p, err := filepath.EvalSymlinks("/sys/class/block/" + part)
	if err != nil {
		return "", 0, fmt.Errorf("grow: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(p, "partition"))
	if err != nil {
		return "", 0, fmt.Errorf("grow: %s is not a partition: %w", part, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", 0, fmt.Errorf("grow: partition number of %s: %w", part, err)
	}
	return filepath.Base(filepath.Dir(p)), n, nil
}

func sysfsSectors(part string) (uint64, error) {
	b, err := os.ReadFile("/sys/class/block/" + part + "/size")
	if err != nil {
		return 0, fmt.Errorf("grow: %w", err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// Sibling returns the device of partition n on the disk holding the file
// system mounted at mount ("/dev/vda1" for /perm on /dev/vda4): how the box
// finds its boot partition, whatever the card reader calls the disk.
func Sibling(mount string, n int) (string, error) {
	part, err := mountDevice(mount)
	if err != nil {
		return "", err
	}
	disk, _, err := parentDisk(part)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir("/sys/class/block/" + disk)
	if err != nil {
		return "", fmt.Errorf("partitions of %s: %w", disk, err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/sys/class/block", disk, e.Name(), "partition"))
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == strconv.Itoa(n) {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", fmt.Errorf("%s has no partition %d", disk, n)
}
