package main

// `xmppd export NAME` and `xmppd import FILE`: XEP-0227 documents
// (xmppd/portable). Export goes through the running server's admin socket
// when there is one (bbolt lets one process open the file), else opens the
// database. Import runs only while the server is stopped: it writes every
// module's data in one transaction, and modules keep some of it in memory
// from their start (block lists, archive ids).

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/portable"
)

var errStopFirst = errors.New("import: xmppd is running: stop it first (the import writes the database itself)")

// adminClientNoTimeout is adminClient without its 30 s limit: an export
// of a 100,000-message archive streams for longer on a Pi.
func adminClientNoTimeout(dir state.Dir) *http.Client {
	c := adminClient(dir)
	c.Timeout = 0
	return c
}

func exportCmd(dir state.Dir, domain string, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	forServer := fs.String("for", "", "adapt the document to the importing server: \"ejabberd\" (its import_piefxis reads SCRAM values base64-encoded twice)")
	all := fs.Bool("all", false, "every member's account (the server stopped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (fs.NArg() < 1) != *all || *forServer != "" && *forServer != "ejabberd" {
		return errors.New("usage: export [-for ejabberd] NAME… | -all (writes an XEP-0227 document to standard output)")
	}
	var users []string
	for _, a := range fs.Args() {
		u, err := admin.NormalizeUser(a)
		if err != nil {
			return fmt.Errorf("export: %q: %w", a, err)
		}
		users = append(users, u)
	}
	st, err := openIdle(dir)
	if errors.Is(err, errRunning) {
		if len(users) != 1 {
			return errors.New("export: one account at a time while the server runs (stop it for more, or -all)")
		}
		q := ""
		if *forServer != "" {
			q = "?for=" + *forServer
		}
		resp, err := adminClientNoTimeout(dir).Get("http://admin/users/" + users[0] + "/export" + q)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("export: %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		n, err := io.Copy(os.Stdout, resp.Body)
		if err != nil {
			return fmt.Errorf("export: after %d bytes: %w", n, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer st.Close()
	if *all {
		l, err := st.Users()
		if err != nil {
			return err
		}
		for _, u := range l {
			if !strings.HasPrefix(u, "_") { // the box's own accounts ("_health")
				users = append(users, u)
			}
		}
	}
	w := bufio.NewWriterSize(os.Stdout, 256<<10)
	if err := portable.ExportWith(st, domain, users, w, portable.ExportOptions{Ejabberd: *forServer == "ejabberd"}); err != nil {
		return err
	}
	return w.Flush()
}

func importCmd(dir state.Dir, domain string, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	mapDomain := fs.String("map-domain", "", "import the accounts of this other domain's <host/> as accounts of this server (a member moving here)")
	maxMB := fs.Int64("max-mb", portable.DefaultMaxBytes>>20, "refuse documents larger than this many MiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: import [-map-domain OLD] [-max-mb N] FILE (FILE - reads standard input)")
	}
	var r io.Reader = os.Stdin
	o := portable.Options{MapDomain: *mapDomain, MaxBytes: *maxMB << 20}
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
		// A split document (ejabberd's export_piefxis): files named
		// relative to the document, never outside its directory.
		base := filepath.Dir(name)
		o.Include = func(href string) (io.ReadCloser, error) {
			if !filepath.IsLocal(href) {
				return nil, fmt.Errorf("%q is not a path below %s", href, base)
			}
			return os.Open(filepath.Join(base, href))
		}
	}
	st, err := openIdle(dir)
	if errors.Is(err, errRunning) {
		return errStopFirst
	}
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := portable.Import(st, domain, bufio.NewReaderSize(r, 256<<10), o)
	if err != nil {
		return err
	}
	fmt.Printf("imported %s: %d contacts, %d vCards, %d private, %d PEP nodes (%d items), %d blocked, %d offline, %d archived\n",
		strings.Join(rep.Users, ", "), rep.Contacts, rep.VCards, rep.Private, rep.PEPNodes, rep.PEPItems, rep.Blocked, rep.Offline, rep.Archived)
	for _, s := range rep.Skipped {
		fmt.Printf("not imported (not understood): %s\n", s)
	}
	// Prosody keeps SCRAM-SHA-1 verifiers only; most apps choose
	// SCRAM-SHA-256 when offered and then fail. One login on the box's
	// web pages completes them (store.CompleteVerifiers).
	var sha1Only []string
	for _, u := range rep.Users {
		if a, err := st.Account(u); err == nil && len(a.SHA256.StoredKey) == 0 {
			sha1Only = append(sha1Only, u)
		}
	}
	if len(sha1Only) > 0 {
		fmt.Printf("%s came with SCRAM-SHA-1 only: apps that use SCRAM-SHA-256 log in after one login on the box's web page (or a new password)\n", strings.Join(sha1Only, ", "))
	}
	return nil
}
