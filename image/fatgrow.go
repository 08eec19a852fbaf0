package image

import (
	"encoding/binary"
	"fmt"
	"os"
)

// growFAT lets the boot file system use clusters it already has FAT entries
// for. gok writes a FAT sized exactly to its content, so not even a small text
// file fits; but the FAT table is allocated in whole sectors, which leaves
// entries for up to a few hundred clusters unused, and the partition has room
// behind the file system. Raising the total-sectors field uses that room
// without moving any existing file: gokrazy's MBR boot code finds the kernel
// and cmdline.txt by fixed block addresses, so files must stay where they are.
func growFAT(img string, part Partition) (extraClusters int64, err error) {
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, part.Start); err != nil {
		return 0, fmt.Errorf("grow FAT: %w", err)
	}
	le := binary.LittleEndian
	bytesPerSector := int64(le.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(le.Uint16(bs[14:]))
	nFATs := int64(bs[16])
	rootEntries := int64(le.Uint16(bs[17:]))
	total := int64(le.Uint16(bs[19:]))
	if total == 0 {
		total = int64(le.Uint32(bs[32:]))
	}
	fatSectors := int64(le.Uint16(bs[22:]))
	entryBytes := int64(2) // FAT16
	if fatSectors == 0 {
		fatSectors = int64(le.Uint32(bs[36:]))
		entryBytes = 4 // FAT32
	}
	if bytesPerSector != 512 || spc == 0 || nFATs == 0 || bs[510] != 0x55 || bs[511] != 0xAA {
		return 0, fmt.Errorf("grow FAT: unexpected boot sector (bytes/sector %d, sectors/cluster %d)", bytesPerSector, spc)
	}
	firstData := reserved + nFATs*fatSectors + (rootEntries*32+bytesPerSector-1)/bytesPerSector
	clusters := (total - firstData) / spc
	maxByFAT := fatSectors*bytesPerSector/entryBytes - 2
	maxByPart := (part.Size/bytesPerSector - firstData) / spc
	limit := min(maxByFAT, maxByPart)
	if entryBytes == 2 {
		limit = min(limit, 65524) // beyond this a reader would take it for FAT32
	}
	if limit <= clusters {
		return 0, nil
	}
	newTotal := firstData + limit*spc
	if newTotal > 0xFFFF || le.Uint16(bs[19:]) == 0 {
		le.PutUint16(bs[19:], 0)
		le.PutUint32(bs[32:], uint32(newTotal))
	} else {
		le.PutUint16(bs[19:], uint16(newTotal))
	}
	if _, err := f.WriteAt(bs, part.Start); err != nil {
		return 0, fmt.Errorf("grow FAT: %w", err)
	}
	return limit - clusters, f.Close()
}
