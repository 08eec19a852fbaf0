// Package image builds Hearth's firmware images with gok and checks what it
// built: the partition table, the boot files, the setup code and /perm.
package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Partition is one entry of an image's partition table, in bytes.
type Partition struct {
	Number int    // 1-based, as Linux numbers them
	Start  int64  // offset in bytes
	Size   int64  // length in bytes
	Type   string // GPT type GUID (upper case) or MBR type as "0x0c"
	Name   string // GPT partition name; empty for MBR
}

// Well-known GPT partition type GUIDs gokrazy writes.
const (
	TypeEFISystem  = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeLinuxData  = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeRootARM64  = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	TypeRootX86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

const sector = 512

// ReadPartitions reads the GPT of a disk image, or its MBR when it has no GPT.
// We parse it ourselves (rather than shelling out to sfdisk) so the build and
// the tests can find the boot and /perm partitions on any machine.
func ReadPartitions(r io.ReaderAt) ([]Partition, error) {
	mbr := make([]byte, sector)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("partition table: read MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, errors.New("partition table: no MBR boot signature")
	}
	hdr := make([]byte, sector)
	if _, err := r.ReadAt(hdr, sector); err != nil {
		return nil, fmt.Errorf("partition table: read GPT header: %w", err)
	}
	if string(hdr[:8]) == "EFI PART" {
		return readGPT(r, hdr)
	}
	var parts []Partition
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		typ := e[4]
		if typ == 0 {
			continue
		}
		parts = append(parts, Partition{
			Number: i + 1,
			Start:  int64(binary.LittleEndian.Uint32(e[8:])) * sector,
			Size:   int64(binary.LittleEndian.Uint32(e[12:])) * sector,
			Type:   fmt.Sprintf("0x%02x", typ),
		})
	}
	return parts, nil
}

func readGPT(r io.ReaderAt, hdr []byte) ([]Partition, error) {
	entriesLBA := int64(binary.LittleEndian.Uint64(hdr[72:]))
	count := binary.LittleEndian.Uint32(hdr[80:])
	size := binary.LittleEndian.Uint32(hdr[84:])
	if size < 128 || count > 1024 {
		return nil, fmt.Errorf("partition table: implausible GPT (%d entries of %d bytes)", count, size)
	}
	buf := make([]byte, int(count)*int(size))
	if _, err := r.ReadAt(buf, entriesLBA*sector); err != nil {
		return nil, fmt.Errorf("partition table: read GPT entries: %w", err)
	}
	var parts []Partition
	for i := 0; i < int(count); i++ {
		e := buf[i*int(size) : (i+1)*int(size)]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		parts = append(parts, Partition{
			Number: i + 1,
			Start:  first * sector,
			Size:   (last - first + 1) * sector,
			Type:   guidString(e[:16]),
			Name:   utf16leString(e[56:128]),
		})
	}
	return parts, nil
}

// guidString formats a GPT GUID, whose first three fields are little-endian.
func guidString(b []byte) string {
	return strings.ToUpper(fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:]),
		binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]),
		b[8:10], b[10:16]))
}

func utf16leString(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
