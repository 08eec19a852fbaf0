package image

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetupCode(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		c, err := NewSetupCode()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidSetupCode(c) {
			t.Fatalf("NewSetupCode() = %q, not valid", c)
		}
		if strings.ContainsAny(c, "01OIL") {
			t.Fatalf("code %q has an ambiguous character", c)
		}
		if seen[c] {
			t.Fatalf("code %q drawn twice", c)
		}
		seen[c] = true
	}
	for _, bad := range []string{"", "ABCD-EFGH-JKMN-PQR", "ABCD-EFGH-JKMN-PQR0", "ABCDEEFGH-JKMN-PQRS", "abcd-efgh-jkmn-pqrs"} {
		if ValidSetupCode(bad) {
			t.Errorf("ValidSetupCode(%q) = true", bad)
		}
	}
	if got := SetupURL("ABCD-EFGH"); got != "http://hearth.local/setup?code=ABCD-EFGH" {
		t.Errorf("SetupURL = %q", got)
	}
	qr, err := SetupQR("ABCD-EFGH-JKMN-PQRS")
	if err != nil || strings.Count(qr, "\n") < 15 {
		t.Errorf("SetupQR: %v, %d lines", err, strings.Count(qr, "\n"))
	}
}

// gptImage builds a small disk image with a protective MBR and a GPT holding
// the given partitions (start and size in sectors).
func gptImage(t *testing.T, parts [][2]uint64) []byte {
	t.Helper()
	img := make([]byte, 64*sector)
	img[510], img[511] = 0x55, 0xAA
	img[446+4] = 0xEE
	copy(img[sector:], "EFI PART")
	binary.LittleEndian.PutUint64(img[sector+72:], 2)
	binary.LittleEndian.PutUint32(img[sector+80:], 128)
	binary.LittleEndian.PutUint32(img[sector+84:], 128)
	efi := []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	for i, p := range parts {
		e := img[2*sector+i*128:]
		copy(e, efi)
		e[16] = byte(i + 1) // unique partition GUID, content irrelevant
		binary.LittleEndian.PutUint64(e[32:], p[0])
		binary.LittleEndian.PutUint64(e[40:], p[0]+p[1]-1)
		copy(e[56:], []byte{'b', 0, 'o', 0, 'o', 0, 't', 0})
	}
	return img
}

func TestReadPartitionsGPT(t *testing.T) {
	img := gptImage(t, [][2]uint64{{8192, 204800}, {212992, 1024000}})
	parts, err := ReadPartitions(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("got %d partitions", len(parts))
	}
	if p := parts[0]; p.Number != 1 || p.Start != 8192*512 || p.Size != 204800*512 || p.Type != TypeEFISystem || p.Name != "boot" {
		t.Errorf("partition 1 = %+v", p)
	}
	if p := parts[1]; p.Number != 2 || p.Start != 212992*512 {
		t.Errorf("partition 2 = %+v", p)
	}
}

func TestReadPartitionsMBR(t *testing.T) {
	img := make([]byte, 4*sector)
	img[510], img[511] = 0x55, 0xAA
	e := img[446+16:]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 4096)
	parts, err := ReadPartitions(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].Number != 2 || parts[0].Start != 2048*512 || parts[0].Type != "0x83" {
		t.Fatalf("parts = %+v", parts)
	}
	img[511] = 0
	if _, err := ReadPartitions(bytes.NewReader(img)); err == nil {
		t.Fatal("no error for an image without boot signature")
	}
}

func TestAbsReplaces(t *testing.T) {
	in := "module x\n\nreplace github.com/hearthchat/hearth => ../../../..\nreplace a => b v1.0.0\n"
	got := string(absReplaces([]byte(in), "/r/builddir/github.com/hearthchat/hearth"))
	if !strings.Contains(got, "replace github.com/hearthchat/hearth => /r\n") || !strings.Contains(got, "replace a => b v1.0.0") {
		t.Fatalf("absReplaces:\n%s", got)
	}
}

func TestDeriveInstance(t *testing.T) {
	repo := t.TempDir()
	os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"Hostname":"hearth","Packages":["a"],"SerialConsole":"disabled",
		"PackageConfig":{"a":{"ExtraFilePaths":{"/etc/x.json":"keys/root.json","/etc/y":"/abs/y"},"CommandLineFlags":["-v"]}}}`), 0o644)
	os.WriteFile(filepath.Join(repo, "over.json"), []byte(`{"SerialConsole":"ttyS0,115200"}`), 0o644)
	bd := filepath.Join(repo, "builddir", "github.com", "hearthchat", "hearth")
	os.MkdirAll(bd, 0o755)
	os.WriteFile(filepath.Join(bd, "go.mod"), []byte("module m\nreplace github.com/hearthchat/hearth => ../../../..\n"), 0o644)
	dst := filepath.Join(t.TempDir(), "vm")
	if err := DeriveInstance(repo, filepath.Join(repo, "over.json"), dst, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(dst, "config.json"))
	for _, want := range []string{`"ttyS0,115200"`, `"Hostname": "hearth"`, `"/etc/x.json": "` + filepath.Join(repo, "keys/root.json") + `"`, `"/etc/y": "/abs/y"`, `"-v"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("derived config lacks %s:\n%s", want, cfg)
		}
	}
	mod, _ := os.ReadFile(filepath.Join(dst, "builddir", "github.com", "hearthchat", "hearth", "go.mod"))
	if !strings.Contains(string(mod), "=> "+repo+"\n") {
		t.Errorf("derived go.mod:\n%s", mod)
	}
}

// TestRepoConfig keeps the committed instance config honest: gokrazy's web
// UI off the network (no password, unix socket only) and off port 80/443.
func TestRepoConfig(t *testing.T) {
	b, err := os.ReadFile("../config.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"NoPassword": true`, `"github.com/hearthchat/hearth/cmd/xmppd"`, `"github.com/hearthchat/hearth/cmd/updater"`, `"GOARCH=arm64"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config.json lacks %s", want)
		}
	}
	for _, bad := range []string{`"HTTPPassword"`, `"HTTPPort": "80"`, `"HTTPSPort": "443"`} {
		if strings.Contains(string(b), bad) {
			t.Errorf("config.json has %s", bad)
		}
	}
}
