//go:build e2e

package image_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/image/vm"
	"github.com/hearthchat/hearth/xmppd/store"
)

// TestUSBStickBackup is issue 15's "the nightly backup reaches a USB
// stick plugged into the box", on the amd64 image under qemu with a USB
// stick on an xHCI controller (usb-storage over a FAT32 image made by
// mkfs.vfat, with a file of the owner's on it). The box is configured
// with the stick as the backup's destination and boots with the stick in:
// the catch-up run writes a backup within a minute with no click. The
// admin page (logged in over HTTP, as a browser would) says which stick
// it sees and that one backup is on it. The stick is pulled (QMP
// device_del): the page says "No USB stick is plugged in" and "back up
// now" says so. It is plugged back in (drive_add, device_add): "back up
// now" writes the second copy. Slowed down and pulled out while a backup
// is written to it, "back up now" says it was pulled out; back in, the
// next one works. Then a full stick is plugged in instead:
// "is full", and after power-off that stick holds no temporary file and
// its owner's file is intact. A blank stick (no file system) and the
// first stick write-protected (a read-only drive) are each named with
// what is wrong; the blank one is never formatted. The first stick, read on the host with
// mtools, holds both backups in "Hearth backups", and the newest one
// decrypts and checks with appliance/backup's reader.
func TestUSBStickBackup(t *testing.T) {
	start := time.Now()
	const adminPW = "green kettle river"
	const pass = "four words of passphrase"
	dir := t.TempDir()
	stick := fatImage(t, filepath.Join(dir, "stick.img"), 64, "HEARTHBAK", "-F", "32")
	mcopyIn(t, stick, "notes.txt", "the owner's own file\n")
	full := fatImage(t, filepath.Join(dir, "full.img"), 4, "SMALL")
	fillFAT(t, full, 16<<10) // 16 KiB left: less than any backup
	blank := filepath.Join(dir, "blank.img")
	if err := os.WriteFile(blank, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	img := buildVMImageWith(t, "1", func(d string) {
		st, err := store.Open(state.Dir(d).DB())
		if err != nil {
			t.Fatal(err)
		}
		err = st.CreateAccount("anna", adminPW, true)
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		// 3 MB of ballast among the uploads (not an upload's name, so the
		// upload module leaves it): a backup that takes seconds to write
		// to a slowed stick.
		ballast := make([]byte, 3<<20)
		rand.Read(ballast)
		os.MkdirAll(state.Dir(d).Uploads(), 0o700)
		if err := os.WriteFile(filepath.Join(state.Dir(d).Uploads(), "ballast.bin"), ballast, 0o600); err != nil {
			t.Fatal(err)
		}
		c := config.Default()
		c.Site = config.Site{Name: "Riverside Rowing Club", Reach: "home", Admin: "anna", Done: true}
		c.Backup = config.Backup{Dir: backup.USB, Keep: 2}
		if err := config.Save(filepath.Join(d, "config.json"), c); err != nil {
			t.Fatal(err)
		}
		if err := backup.SavePassphrase(state.Dir(d), pass); err != nil {
			t.Fatal(err)
		}
	})
	built := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	qmpPath := filepath.Join(dir, "qmp.sock")
	web := freePort(t)
	logf, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vm.Start(vm.Options{Image: img.Path, Serial: filepath.Join(dir, "serial.log"), Ports: map[int]int{80: web}, Log: logf, Isolate: true,
		Extra: []string{"-qmp", "unix:" + qmpPath + ",server=on,wait=off",
			"-device", "qemu-xhci,id=xhci",
			"-drive", "if=none,id=stick,format=raw,file=" + stick,
			"-device", "usb-storage,bus=xhci.0,drive=stick,id=stickdev"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Stop()
		logf.Close()
		if t.Failed() {
			log := v.SerialTail(8000)
			q, _ := os.ReadFile(filepath.Join(dir, "qemu.log"))
			t.Logf("serial console (tail):\n%s\nqemu: %s", log, q)
		}
	})

	// Plugged in at boot, no backup yet: the catch-up run, no click.
	addr := fmt.Sprintf("127.0.0.1:%d", web)
	waitPage(t, ctx, addr, "/login", `name="password"`)
	c := login(t, ctx, addr, "anna", adminPW)
	c.waitFor(t, ctx, "/admin/backup", ", 1 on the stick", 3*time.Minute)
	wrote := time.Now()
	page := plain(c.get(t, "/admin/backup"))
	for _, want := range []string{`USB stick plugged in: "HEARTHBAK" (67.1 MB).`, ", 1 on the stick", `on "HEARTHBAK" (67.1 MB), `, " MB free after it"} {
		if !strings.Contains(page, want) {
			t.Errorf("backup page after the catch-up run lacks %q:\n%s", want, page)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Pulled out.
	q := dialQMP(t, qmpPath)
	q.hmp(t, "device_del stickdev")
	c.waitFor(t, ctx, "/admin/backup", "No USB stick is plugged in.")
	if page := plain(c.now(t)); !strings.Contains(page, "The backup could not be made: no USB stick is plugged in") {
		t.Errorf("back up now without a stick:\n%s", text(page))
	}
	// Plugged back in: the same stick works again.
	q.plug(t, "stick2", stick, "")
	c.waitFor(t, ctx, "/admin/backup", `USB stick plugged in: "HEARTHBAK"`)
	if page := plain(c.now(t)); !strings.Contains(page, "Backed up to the stick.") || !strings.Contains(page, ", 2 on the stick") {
		t.Errorf("back up now after the stick came back:\n%s", text(page))
	}
	// Pulled out while it writes: the stick slowed to 256 kB/s (qemu's
	// write throttle) so that writing the 3 MB backup takes seconds, and
	// pulled once qemu saw 512 kB of it reach the stick.
	q.unplug(t, "stick2")
	c.waitFor(t, ctx, "/admin/backup", "No USB stick is plugged in.")
	q.plug(t, "slow", stick, "throttling.bps-write=262144")
	c.waitFor(t, ctx, "/admin/backup", `USB stick plugged in: "HEARTHBAK"`)
	pulledPage := make(chan string, 1)
	go func() { p, err := c.tryNow(); pulledPage <- fmt.Sprint(plain(p), err) }()
	q.waitWritten(t, ctx, "slow", 512<<10)
	q.unplug(t, "slow")
	if page := <-pulledPage; !strings.Contains(page, "The backup could not be made: ") || !strings.Contains(page, "pulled out") {
		t.Errorf("back up now with the stick pulled mid-write:\n%s", text(page))
	} else {
		i := strings.Index(page, "The backup could not be made: ")
		t.Logf("pulled mid-write: %.200s", page[i:])
	}
	// Back in: the next backup works (the earlier two kept, the half
	// written one's temporary file removed).
	q.plug(t, "stick3", stick, "")
	c.waitFor(t, ctx, "/admin/backup", `USB stick plugged in: "HEARTHBAK"`)
	if page := plain(c.now(t)); !strings.Contains(page, "Backed up to the stick.") || !strings.Contains(page, ", 2 on the stick") {
		t.Errorf("back up now after a pull mid-write:\n%s", text(page))
	}
	// A full stick instead.
	q.unplug(t, "stick3")
	c.waitFor(t, ctx, "/admin/backup", "No USB stick is plugged in.")
	q.plug(t, "full", full, "")
	c.waitFor(t, ctx, "/admin/backup", `USB stick plugged in: "SMALL"`)
	if page := plain(c.now(t)); !strings.Contains(page, `The backup could not be made: the USB stick "SMALL" (4.2 MB) is full`) {
		t.Errorf("back up now to a full stick:\n%s", text(page))
	}
	q.unplug(t, "full") // as a person would, before the power goes
	c.waitFor(t, ctx, "/admin/backup", "No USB stick is plugged in.")
	// A blank stick (no file system) and a write-protected one: said so,
	// and "back up now" writes nothing to either.
	q.plug(t, "blank", blank, "")
	c.waitFor(t, ctx, "/admin/backup", `has no file system the box knows (FAT32, exFAT or ext4); the box never formats a stick`)
	if page := plain(c.now(t)); !strings.Contains(page, "The backup could not be made: the USB stick") || !strings.Contains(page, "has no file system the box knows") {
		t.Errorf("back up now to a blank stick:\n%s", text(page))
	}
	q.unplug(t, "blank")
	c.waitFor(t, ctx, "/admin/backup", "No USB stick is plugged in.")
	q.plug(t, "ro", stick, "readonly=on")
	c.waitFor(t, ctx, "/admin/backup", `The USB stick "HEARTHBAK" (67.1 MB) is read-only (is its write-protect switch on?)`)
	q.unplug(t, "ro")
	c.waitFor(t, ctx, "/admin/backup", "No USB stick is plugged in.")
	ran := time.Now()
	v.Stop()

	// The sticks, read on the host.
	if got := mdir(t, full, "::/Hearth backups"); strings.Contains(got, "hearth-") || strings.Contains(got, ".tmp") {
		t.Errorf("the full stick holds a (temporary) backup file:\n%s", got)
	}
	if got := mtype(t, full, "::/filler.bin"); len(got) == 0 {
		t.Error("the full stick's own file is gone")
	}
	if b, err := os.ReadFile(blank); err != nil || strings.Trim(string(b), "\x00") != "" {
		t.Errorf("the blank stick was written to (%v)", err)
	}
	if got := mtype(t, stick, "::/notes.txt"); got != "the owner's own file\n" {
		t.Errorf("the owner's file on the stick: %q", got)
	}
	names := regexp.MustCompile(`hearth-[a-z0-9._-]+\.hearth-backup`).FindAllString(mdirLong(t, stick, "::/Hearth backups"), -1)
	if len(names) != 2 {
		t.Fatalf("want 2 backups on the stick, found %v", names)
	}
	if got := mdirLong(t, stick, "::/Hearth backups"); strings.Contains(got, ".tmp") {
		t.Errorf("a temporary file is left on the stick:\n%s", got)
	}
	out := filepath.Join(dir, "newest"+backup.Suffix)
	newest := names[0]
	if names[1] > newest {
		newest = names[1]
	}
	if o, err := exec.Command("mcopy", "-n", "-i", stick, "::/Hearth backups/"+newest, out).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v %s", err, o)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := backup.Read(f, pass)
	if err != nil {
		t.Fatalf("the backup from the stick: %v", err)
	}
	if m.Domain != img.Domain || len(m.Files) == 0 {
		t.Errorf("backup manifest: domain %q, %d files", m.Domain, len(m.Files))
	}
	fi, _ := f.Stat()
	t.Logf("USB stick backup: image built in %v; first backup on the stick %v after boot; page checks, pull, replug and full stick %v; %d files, %d bytes",
		built.Sub(start).Round(time.Second), wrote.Sub(built).Round(time.Second), ran.Sub(wrote).Round(time.Second), len(m.Files), fi.Size())
}

// fatImage makes a stick image of mb MiB (sparse) with mkfs.vfat.
func fatImage(t *testing.T, p string, mb int64, label string, args ...string) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(mb << 20)
	f.Close()
	if out, err := exec.Command("/usr/sbin/mkfs.vfat", append(append(args, "-n", label), p)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v %s (make test-deps installs dosfstools)", err, out)
	}
	return p
}

func mcopyIn(t *testing.T, img, name, content string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mcopy", "-i", img, src, "::/"+name).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v %s", err, out)
	}
}

// fillFAT fills img with one file until left bytes are free.
func fillFAT(t *testing.T, img string, left int64) {
	t.Helper()
	m := regexp.MustCompile(`([\d ]+) bytes free`).FindStringSubmatch(mdir(t, img, "::/"))
	if m == nil {
		t.Fatal("mdir: no free bytes")
	}
	free, _ := strconv.ParseInt(strings.ReplaceAll(m[1], " ", ""), 10, 64)
	mcopyIn(t, img, "filler.bin", strings.Repeat("x", int(free-left)))
}

func mdir(t *testing.T, img, path string) string {
	t.Helper()
	out, err := exec.Command("mdir", "-a", "-i", img, path).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "File not found") {
		t.Fatalf("mdir %s: %v %s", path, err, out)
	}
	return string(out)
}

// mdirLong lists long names only (-b: one bare path a line).
func mdirLong(t *testing.T, img, path string) string {
	t.Helper()
	out, err := exec.Command("mdir", "-a", "-b", "-i", img, path).CombinedOutput()
	if err != nil {
		t.Fatalf("mdir -b %s: %v %s", path, err, out)
	}
	return string(out)
}

func mtype(t *testing.T, img, path string) string {
	t.Helper()
	out, err := exec.Command("mtype", "-i", img, path).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// webClient is an admin's session on the box's pages (cookies, the
// page's CSRF token).
type webClient struct {
	*http.Client
	base string
	ctx  context.Context
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func login(t *testing.T, ctx context.Context, addr, user, pw string) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &webClient{Client: &http.Client{Jar: jar, Timeout: 90 * time.Second}, base: "http://" + addr, ctx: ctx}
	page := c.get(t, "/login")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf on the login page: %s", text(page))
	}
	body := c.post(t, "/login", url.Values{"csrf": {m[1]}, "user": {user}, "password": {pw}, "next": {"/admin/backup"}})
	if !strings.Contains(body, "Every night to a USB stick") {
		t.Fatalf("login did not lead to the backup page: %s", text(body))
	}
	return c
}

func (c *webClient) get(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(c.ctx, "GET", c.base+path, nil)
	return c.do(t, req)
}

func (c *webClient) post(t *testing.T, path string, f url.Values) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(c.ctx, "POST", c.base+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(t, req)
}

func (c *webClient) do(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b)
}

// now presses "Back up to the stick now" and returns the page.
func (c *webClient) now(t *testing.T) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(c.get(t, "/admin/backup"))
	if m == nil {
		t.Fatal("no csrf on the backup page")
	}
	return c.post(t, "/admin/backup/nightly", url.Values{"csrf": {m[1]}, "action": {"now"}})
}

// tryNow is now for another goroutine (errors returned, not fatal).
func (c *webClient) tryNow() (string, error) {
	get := func(req *http.Request) (string, error) {
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return string(b), err
	}
	req, _ := http.NewRequestWithContext(c.ctx, "GET", c.base+"/admin/backup", nil)
	page, err := get(req)
	m := csrfField.FindStringSubmatch(page)
	if err != nil || m == nil {
		return page, fmt.Errorf("no csrf on the backup page (%v)", err)
	}
	f := url.Values{"csrf": {m[1]}, "action": {"now"}}
	req, _ = http.NewRequestWithContext(c.ctx, "POST", c.base+"/admin/backup/nightly", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return get(req)
}

// waitFor reloads path until it holds want (the guest's kernel takes a
// moment to see a stick come or go).
func (c *webClient) waitFor(t *testing.T, ctx context.Context, path, want string, d ...time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, append(d, 60*time.Second)[0])
	defer cancel()
	var page string
	for {
		if page = c.get(t, path); strings.Contains(plain(page), want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never said %q:\n%s", path, want, text(page))
		case <-time.After(time.Second):
		}
	}
}

// plain is a page's text without its markup, entities decoded and
// spaces collapsed: what a person reads.
func plain(page string) string {
	if i := strings.Index(page, "<main"); i >= 0 {
		page = page[i:]
	}
	s := html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, " "))
	return strings.TrimSpace(regexp.MustCompile(`\s+`).ReplaceAllString(s, " "))
}

// text is plain, cut short for failure messages.
func text(page string) string {
	s := plain(page)
	if len(s) > 3000 {
		s = s[:3000]
	}
	return s
}

// qmp is qemu's machine protocol, used here only for its human monitor
// commands (plugging USB devices in and out).
type qmp struct {
	c net.Conn
	r *bufio.Reader
}

func dialQMP(t *testing.T, path string) *qmp {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	q := &qmp{c, bufio.NewReader(c)}
	q.read(t) // greeting
	q.call(t, `{"execute":"qmp_capabilities"}`)
	return q
}

func (q *qmp) read(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	q.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("qmp: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("qmp: %v: %s", err, line)
	}
	return m
}

// call sends cmd and returns its answer, skipping events.
func (q *qmp) call(t *testing.T, cmd string) map[string]json.RawMessage {
	t.Helper()
	if _, err := q.c.Write([]byte(cmd + "\n")); err != nil {
		t.Fatal(err)
	}
	for {
		m := q.read(t)
		if _, ev := m["event"]; ev {
			continue
		}
		if e, bad := m["error"]; bad {
			t.Fatalf("qmp %s: %s", cmd, e)
		}
		return m
	}
}

// waitWritten waits until qemu has written n bytes to drive (the guest
// is writing to the stick).
func (q *qmp) waitWritten(t *testing.T, ctx context.Context, drive string, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last int64
	for {
		var stats []struct {
			Device string `json:"device"`
			Stats  struct {
				WrBytes int64 `json:"wr_bytes"`
			} `json:"stats"`
		}
		json.Unmarshal(q.call(t, `{"execute":"query-blockstats"}`)["return"], &stats)
		for _, s := range stats {
			if s.Device == drive {
				last = s.Stats.WrBytes
			}
		}
		if last >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("qemu wrote %d bytes to %s, waited for %d", last, drive, n)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// plug puts a stick in: file as the drive named drive (opts: more
// drive_add options, such as readonly=on) on a USB storage device named
// drive+"dev".
func (q *qmp) plug(t *testing.T, drive, file, opts string) {
	t.Helper()
	if opts != "" {
		opts += ","
	}
	q.hmp(t, "drive_add 0 if=none,id="+drive+",format=raw,"+opts+"file="+file)
	q.hmp(t, "device_add usb-storage,bus=xhci.0,drive="+drive+",id="+drive+"dev")
}

// unplug pulls the stick plug put in out and drops its drive (drive_add's
// drives stay after device_del and keep the image file's write lock; a
// drive that went with its device is "not found").
func (q *qmp) unplug(t *testing.T, drive string) {
	t.Helper()
	q.hmp(t, "device_del "+drive+"dev")
	b, _ := json.Marshal(map[string]any{"execute": "human-monitor-command", "arguments": map[string]string{"command-line": "drive_del " + drive}})
	m := q.call(t, string(b))
	var out string
	json.Unmarshal(m["return"], &out)
	if out = strings.TrimSpace(out); out != "" && !strings.Contains(out, "not found") {
		t.Fatalf("qemu monitor drive_del %s: %s", drive, out)
	}
}

func (q *qmp) hmp(t *testing.T, line string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"execute": "human-monitor-command", "arguments": map[string]string{"command-line": line}})
	m := q.call(t, string(b))
	var out string
	json.Unmarshal(m["return"], &out)
	if strings.TrimSpace(out) != "" && !strings.HasPrefix(out, "OK") {
		t.Fatalf("qemu monitor %q: %s", line, out)
	}
}
