// Package growfs makes /perm use the whole SD card on the box's first boot.
//
// gok writes a 2 GiB image whose last partition (/perm, number 4) ends at
// the image's end; flashed onto a 32 GB card, 30 GB stay unused, and
// gokrazy never grows the partition. Grow does it in three steps, each of
// which checks first whether it is already done, so a power cut at any
// moment leaves a box that finishes the job on its next boot:
//
//  1. the GPT entry of /perm is moved to the end of the card (GrowGPT);
//  2. the kernel is told the partition's new size (BLKPG, while mounted);
//  3. the mounted ext4 file system is grown (EXT4_IOC_RESIZE_FS, which
//     journals every step).
//
// The GPT has to change in two places (the entry array and the header that
// holds the array's CRC), and Linux does not fall back to the backup GPT
// unless booted with "gpt": a power cut between two writes to LBA 1 and
// LBA 2 would leave a card that does not boot. So the new array is written
// to the other of two slots first (LBA 2 or the 32 sectors after the
// standard array, unused by gokrazy's layout, whose first partition starts
// at 4 MiB), and one 512-byte write of the header switches from the old
// table to the new one.
package growfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const sector = 512

// Disk is the whole card (the block device, or an image file in tests).
type Disk interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// header is the part of a GPT header we read and write (UEFI 2.10 §5.3.2).
type header struct {
	raw        []byte // the whole sector
	size       uint32
	myLBA      uint64
	altLBA     uint64
	firstUse   uint64
	lastUse    uint64
	entriesLBA uint64
	count      uint32
	entrySize  uint32
	arrayCRC   uint32
}

func readHeader(d Disk, lba uint64) (*header, error) {
	raw := make([]byte, sector)
	if _, err := d.ReadAt(raw, int64(lba)*sector); err != nil {
		return nil, fmt.Errorf("GPT header at LBA %d: %w", lba, err)
	}
	le := binary.LittleEndian
	if string(raw[:8]) != "EFI PART" {
		return nil, fmt.Errorf("no GPT header at LBA %d", lba)
	}
	h := &header{raw: raw, size: le.Uint32(raw[12:])}
	if h.size < 92 || h.size > sector {
		return nil, fmt.Errorf("GPT header at LBA %d: size %d", lba, h.size)
	}
	tmp := bytes.Clone(raw[:h.size])
	le.PutUint32(tmp[16:], 0)
	if crc32.ChecksumIEEE(tmp) != le.Uint32(raw[16:]) {
		return nil, fmt.Errorf("GPT header at LBA %d: bad CRC", lba)
	}
	h.myLBA = le.Uint64(raw[24:])
	h.altLBA = le.Uint64(raw[32:])
	h.firstUse = le.Uint64(raw[40:])
	h.lastUse = le.Uint64(raw[48:])
	h.entriesLBA = le.Uint64(raw[72:])
	h.count = le.Uint32(raw[80:])
	h.entrySize = le.Uint32(raw[84:])
	h.arrayCRC = le.Uint32(raw[88:])
	if h.entrySize < 128 || h.count == 0 || h.count > 1024 {
		return nil, fmt.Errorf("GPT header at LBA %d: implausible array (%d entries of %d bytes)", lba, h.count, h.entrySize)
	}
	return h, nil
}

// bytes returns the header sector with the fields set and both CRCs fixed.
func (h *header) encode() []byte {
	le := binary.LittleEndian
	raw := bytes.Clone(h.raw)
	le.PutUint64(raw[24:], h.myLBA)
	le.PutUint64(raw[32:], h.altLBA)
	le.PutUint64(raw[40:], h.firstUse)
	le.PutUint64(raw[48:], h.lastUse)
	le.PutUint64(raw[72:], h.entriesLBA)
	le.PutUint32(raw[88:], h.arrayCRC)
	le.PutUint32(raw[16:], 0)
	le.PutUint32(raw[16:], crc32.ChecksumIEEE(raw[:h.size]))
	return raw
}

func (h *header) arraySectors() uint64 {
	return (uint64(h.count)*uint64(h.entrySize) + sector - 1) / sector
}

func readArray(d Disk, h *header) ([]byte, error) {
	a := make([]byte, int(h.count)*int(h.entrySize))
	if _, err := d.ReadAt(a, int64(h.entriesLBA)*sector); err != nil {
		return nil, fmt.Errorf("GPT entries at LBA %d: %w", h.entriesLBA, err)
	}
	if crc32.ChecksumIEEE(a) != h.arrayCRC {
		return nil, fmt.Errorf("GPT entries at LBA %d: bad CRC", h.entriesLBA)
	}
	return a, nil
}

// Span is a partition's extent in 512-byte sectors (last inclusive).
type Span struct{ First, Last uint64 }

// Bytes is the partition's length.
func (s Span) Bytes() int64 { return int64(s.Last-s.First+1) * sector }

// minGrowth: a card less than this much larger than the table is left
// alone (nothing worth a table write; also keeps the old and the new
// backup GPT apart).
const minGrowth = 8 << 20 / sector

// ErrNotLast is returned when the partition to grow is not the one that
// ends last: growing it would overlap another.
var ErrNotLast = errors.New("partition is not the last on the disk")

// GrowGPT moves the end of partition number part (1-based) to the end of a
// disk of diskSectors sectors, unless it is there already (or the disk is
// not meaningfully larger). It returns the partition's extent afterwards
// and whether the table was written. step, if not nil, is called after
// each write reaches the disk ("backup", "array", "header"), for logs and
// for tests that cut the power there.
func GrowGPT(d Disk, diskSectors uint64, part int, step func(string)) (Span, bool, error) {
	if step == nil {
		step = func(string) {}
	}
	h, err := readHeader(d, 1)
	if err != nil {
		return Span{}, false, err
	}
	array, err := readArray(d, h)
	if err != nil {
		return Span{}, false, err
	}
	if part < 1 || part > int(h.count) {
		return Span{}, false, fmt.Errorf("no partition %d in the GPT", part)
	}
	le := binary.LittleEndian
	es := int(h.entrySize)
	e := array[(part-1)*es : part*es]
	if bytes.Equal(e[:16], make([]byte, 16)) {
		return Span{}, false, fmt.Errorf("partition %d is empty", part)
	}
	cur := Span{le.Uint64(e[32:]), le.Uint64(e[40:])}
	lowest := cur.First
	for i := 0; i < int(h.count); i++ {
		o := array[i*es : (i+1)*es]
		if i == part-1 || bytes.Equal(o[:16], make([]byte, 16)) {
			continue
		}
		if le.Uint64(o[40:]) > cur.Last {
			return cur, false, fmt.Errorf("partition %d: %w", part, ErrNotLast)
		}
		lowest = min(lowest, le.Uint64(o[32:]))
	}

	// The layout gok writes: the backup array fills the 32 sectors before
	// the backup header in the disk's last sector.
	n := h.arraySectors()
	if diskSectors < n+2+minGrowth {
		return cur, false, fmt.Errorf("disk of %d sectors is too small", diskSectors)
	}
	lastUse := diskSectors - 2 - n
	// Whole 4 KiB blocks: the file system counts in them.
	newLast := cur.First + (lastUse-cur.First+1)/8*8 - 1
	if newLast < cur.Last+minGrowth {
		return cur, false, nil
	}
	grown := Span{cur.First, newLast}
	le.PutUint64(e[40:], newLast)
	crc := crc32.ChecksumIEEE(array)

	// Backup first: nothing points at the new location yet, and the
	// primary header that will point there comes last.
	backup := *h
	backup.myLBA, backup.altLBA = diskSectors-1, 1
	backup.lastUse, backup.entriesLBA, backup.arrayCRC = lastUse, diskSectors-1-n, crc
	if _, err := d.WriteAt(array, int64(backup.entriesLBA)*sector); err != nil {
		return cur, false, fmt.Errorf("write backup GPT entries: %w", err)
	}
	if _, err := d.WriteAt(backup.encode(), int64(backup.myLBA)*sector); err != nil {
		return cur, false, fmt.Errorf("write backup GPT header: %w", err)
	}
	if err := d.Sync(); err != nil {
		return cur, false, fmt.Errorf("sync backup GPT: %w", err)
	}
	step("backup")

	// The new primary array goes to the slot the current header does not
	// use: LBA 2 or LBA 2+n, which must lie before every partition.
	primary := *h
	primary.altLBA, primary.lastUse, primary.arrayCRC = diskSectors-1, lastUse, crc
	primary.entriesLBA = 2
	if h.entriesLBA == 2 {
		primary.entriesLBA = 2 + n
	}
	if end := primary.entriesLBA + n; end > lowest {
		return cur, false, fmt.Errorf("no room for a second GPT array before LBA %d", lowest)
	} else if primary.firstUse < end {
		// The array must lie outside the usable space (UEFI §5.3.2).
		primary.firstUse = end
	}
	if _, err := d.WriteAt(array, int64(primary.entriesLBA)*sector); err != nil {
		return cur, false, fmt.Errorf("write GPT entries: %w", err)
	}
	if err := d.Sync(); err != nil {
		return cur, false, fmt.Errorf("sync GPT entries: %w", err)
	}
	step("array")
	// The switch: one sector.
	if _, err := d.WriteAt(primary.encode(), sector); err != nil {
		return cur, false, fmt.Errorf("write GPT header: %w", err)
	}
	if err := d.Sync(); err != nil {
		return cur, false, fmt.Errorf("sync GPT header: %w", err)
	}
	step("header")
	return grown, true, nil
}

// ReadSpan returns partition part's extent from the primary GPT.
func ReadSpan(d Disk, part int) (Span, error) {
	h, err := readHeader(d, 1)
	if err != nil {
		return Span{}, err
	}
	array, err := readArray(d, h)
	if err != nil {
		return Span{}, err
	}
	if part < 1 || part > int(h.count) {
		return Span{}, fmt.Errorf("no partition %d in the GPT", part)
	}
	e := array[(part-1)*int(h.entrySize):]
	return Span{binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])}, nil
}
