package growfs

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const mib = 1 << 20

// gokLayout writes gokrazy's partition layout (boot at 4 MiB, two roots,
// /perm to the end) onto a sparse file of size bytes, with sfdisk: a
// table writer we did not write.
func gokLayout(t *testing.T, size int64) string {
	t.Helper()
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk missing (fdisk package)")
	}
	img := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	script := "label: gpt\nfirst-lba: 34\n" +
		"start=8192, size=204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n" +
		"size=1024000, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n" +
		"size=1024000, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n" +
		"type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return img
}

type sfPart struct{ Start, Size uint64 }

// sfdisk reads the table back; --verify checks both GPTs, their CRCs and
// that the arrays lie outside the usable space.
func sfdiskParts(t *testing.T, img string) []sfPart {
	t.Helper()
	return sfdiskRead(t, img, true)
}

// sfdiskRead with verify false only reads the table: a card larger than
// its table (freshly flashed, or cut before the new table) has its backup
// GPT short of the end, which sfdisk --verify names as an error.
func sfdiskRead(t *testing.T, img string, verify bool) []sfPart {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var st struct {
		PT struct {
			Label      string   `json:"label"`
			Partitions []sfPart `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if st.PT.Label != "gpt" || len(st.PT.Partitions) != 4 {
		t.Fatalf("sfdisk sees %q with %d partitions", st.PT.Label, len(st.PT.Partitions))
	}
	if !verify {
		return st.PT.Partitions
	}
	if out, err := exec.Command("sfdisk", "--verify", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
	return st.PT.Partitions
}

func grow(t *testing.T, img string, step func(string)) (Span, bool, error) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	return GrowGPT(f, uint64(fi.Size())/sector, 4, step)
}

func TestGrowGPTToEndOfCard(t *testing.T) {
	img := gokLayout(t, 2048*mib)
	before := sfdiskParts(t, img)
	if err := os.Truncate(img, 4096*mib); err != nil { // the bigger card
		t.Fatal(err)
	}
	span, changed, err := grow(t, img, nil)
	if err != nil || !changed {
		t.Fatalf("GrowGPT: %v (changed %v)", err, changed)
	}
	after := sfdiskParts(t, img)
	for i := 0; i < 3; i++ {
		if after[i] != before[i] {
			t.Errorf("partition %d moved: %+v -> %+v", i+1, before[i], after[i])
		}
	}
	p := after[3]
	if p.Start != before[3].Start || p.Start != span.First || p.Start+p.Size-1 != span.Last {
		t.Errorf("partition 4: sfdisk %+v, GrowGPT %+v", p, span)
	}
	// Ends within 1 MiB of the card's end, before the backup GPT, in
	// whole 4 KiB blocks.
	end := (p.Start + p.Size) * sector
	if end > 4096*mib-33*sector || end < 4095*mib || (p.Size*sector)%4096 != 0 {
		t.Errorf("partition 4 ends at %d of %d bytes (size %d sectors)", end, 4096*mib, p.Size)
	}
	// Once grown, nothing more to do.
	if s2, changed, err := grow(t, img, nil); err != nil || changed || s2 != span {
		t.Errorf("second GrowGPT: %+v changed=%v err=%v", s2, changed, err)
	}
	// A card grown again (the image copied to a still larger card) grows
	// again, switching the array back to LBA 2.
	if err := os.Truncate(img, 6144*mib); err != nil {
		t.Fatal(err)
	}
	if s3, changed, err := grow(t, img, nil); err != nil || !changed || s3.Last <= span.Last {
		t.Errorf("third GrowGPT: %+v changed=%v err=%v", s3, changed, err)
	}
	if got := sfdiskParts(t, img)[3]; (got.Start+got.Size)*sector < 6143*mib {
		t.Errorf("after the second growth partition 4 is %+v", got)
	}
}

func TestGrowGPTSameSizeCardUntouched(t *testing.T) {
	img := gokLayout(t, 2048*mib)
	span, changed, err := grow(t, img, nil)
	if err != nil || changed {
		t.Fatalf("GrowGPT on a card of the image's size: changed=%v err=%v", changed, err)
	}
	if got := sfdiskParts(t, img)[3]; got.Start+got.Size-1 != span.Last {
		t.Errorf("span %+v, sfdisk %+v", span, got)
	}
}

// cutDisk stops writing after the named step: the power went.
type cutDisk struct {
	*os.File
	dead bool
}

var errPowerCut = errors.New("power cut")

func (c *cutDisk) WriteAt(b []byte, off int64) (int, error) {
	if c.dead {
		return 0, errPowerCut
	}
	return c.File.WriteAt(b, off)
}

func (c *cutDisk) Sync() error {
	if c.dead {
		return errPowerCut
	}
	return c.File.Sync()
}

// A power cut after any write leaves a table the kernel accepts (old or
// new, never a mix), and the next boot finishes the job.
func TestGrowGPTPowerCut(t *testing.T) {
	for _, at := range []string{"backup", "array"} {
		t.Run(at, func(t *testing.T) {
			img := gokLayout(t, 2048*mib)
			before := sfdiskParts(t, img)
			if err := os.Truncate(img, 4096*mib); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			d := &cutDisk{File: f}
			_, _, err = GrowGPT(d, 4096*mib/sector, 4, func(s string) {
				if s == at {
					d.dead = true
				}
			})
			f.Close()
			if !errors.Is(err, errPowerCut) {
				t.Fatalf("GrowGPT went on after the cut: %v", err)
			}
			// The primary table is still the old one, and valid.
			if got := sfdiskRead(t, img, false); got[3] != before[3] {
				t.Errorf("after a cut at %s partition 4 is %+v, want the old %+v", at, got[3], before[3])
			}
			fr, _ := os.Open(img)
			if s, err := ReadSpan(fr, 4); err != nil || s.Last != before[3].Start+before[3].Size-1 {
				t.Errorf("ReadSpan after the cut: %+v %v", s, err)
			}
			fr.Close()
			span, changed, err := grow(t, img, nil)
			if err != nil || !changed || span.Bytes() < 4000*mib-1100*mib {
				t.Fatalf("GrowGPT on the next boot: %+v changed=%v err=%v", span, changed, err)
			}
			sfdiskParts(t, img)
		})
	}
}

func TestGrowGPTRefusesWhenNotLast(t *testing.T) {
	img := gokLayout(t, 2048*mib)
	if err := os.Truncate(img, 4096*mib); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := GrowGPT(f, 4096*mib/sector, 3, nil); !errors.Is(err, ErrNotLast) {
		t.Errorf("growing partition 3: %v, want ErrNotLast", err)
	}
}
