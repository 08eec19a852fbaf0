package main

// xmppd backup and xmppd restore: the whole box in one encrypted file
// (appliance/backup).
//
//	xmppd [flags] backup -passphrase-file F [-keep N] -out DIR|-
//	xmppd [flags] restore [-passphrase-file F] FILE

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/appliance/version"
	"github.com/hearthchat/hearth/xmppd"
)

func readPassphrase(path string) (string, error) {
	if path == "" {
		return "", errors.New("-passphrase-file is required (a file holding the passphrase; - for standard input)")
	}
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("passphrase: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// dbSource copies the database consistently: from the running server
// through its admin socket (only one process may open the file), else
// from the file opened here.
func dbSource(dir state.Dir) func(io.Writer) error {
	return func(w io.Writer) error {
		st, err := openIdle(dir)
		if errors.Is(err, errRunning) {
			c := adminClient(dir)
			c.Timeout = 0 // a large database takes a while
			resp, err := c.Get("http://admin/backup/db")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
			}
			_, err = io.Copy(w, resp.Body)
			return err
		}
		if err != nil {
			return err
		}
		defer st.Close()
		_, err = st.Backup(w)
		return err
	}
}

func backupCmd(dir state.Dir, domain string, args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	passFile := fs.String("passphrase-file", "", "file holding the passphrase (- for standard input)")
	out := fs.String("out", "", "directory to write the backup into (keeps -keep copies), or - for standard output")
	keep := fs.Int("keep", 7, "backups to keep in the -out directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: backup -passphrase-file F [-keep N] -out DIR|-")
	}
	pw, err := readPassphrase(*passFile)
	if err != nil {
		return err
	}
	src := backup.Source{Dir: dir, Domain: domain, Version: version.Version, DB: dbSource(dir)}
	start := time.Now()
	if *out == "-" {
		m, err := backup.Write(os.Stdout, src, pw)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "backup: %s (%.1fs)\n", backup.Describe(m), time.Since(start).Seconds())
		return nil
	}
	path, m, err := backup.WriteDir(*out, *keep, src, pw)
	if err != nil {
		return err
	}
	fi, _ := os.Stat(path)
	fmt.Printf("%s\n%s; file %.1f MB (%.1fs)\n", path, backup.Describe(m), float64(fi.Size())/1e6, time.Since(start).Seconds())
	return nil
}

func restoreCmd(dir state.Dir, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	passFile := fs.String("passphrase-file", "", "file holding the passphrase (- for standard input)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: restore -passphrase-file F FILE")
	}
	pw, err := readPassphrase(*passFile)
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := backup.Stage(dir, f, pw)
	if err != nil {
		return err
	}
	fmt.Printf("checked: %s\n", backup.Describe(m))
	if running(dir) {
		fmt.Println("xmppd is running: the restore is applied when it restarts (nothing changes until then)")
		return nil
	}
	if _, err := backup.Resume(dir); err != nil {
		return err
	}
	fmt.Println("restored")
	return nil
}

// reexec starts this program again in this process (same pid, arguments
// and environment): gokrazy, make run and the e2e tests all keep running
// the same process, and the new one's first act is backup.Resume.
func reexec() {
	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	fatal(syscall.Exec(exe, os.Args, os.Environ()))
}

// storeSource backs up the running server's state (the nightly backup).
func storeSource(d *xmppd.Daemon, dir state.Dir) backup.Source {
	return backup.Source{Dir: dir, Domain: d.Server.Domain, Version: version.Version,
		DB: func(w io.Writer) error { _, err := d.Store.Backup(w); return err }}
}

// reloadNetconf asks netconf, which runs beside xmppd and read the state
// before the restore, to read the restored config and onion key. Best
// effort: without netconf (tests, a laptop) there is nobody to tell.
func reloadNetconf(dir state.Dir, log *slog.Logger) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", dir.NetconfSocket())
		}}}
	resp, err := c.Post("http://netconf/reload", "", nil)
	if err != nil {
		log.Info("restore: netconf not reached to reload", "err", err)
		return
	}
	resp.Body.Close()
}
