package main

// `xmppd export NAME` and `xmppd import FILE`: XEP-0227 documents
// (xmppd/portable). Both open the database themselves, so they run while
// the server is stopped: the import writes every module's data in one
// transaction and modules keep some of it in memory from their start
// (block lists), and bbolt lets only one process open the file. The
// running server's admin socket does not offer them (yet).

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/portable"
)

var errStopFirst = errors.New("xmppd is running: stop it first (export and import open the database themselves)")

func exportCmd(dir state.Dir, domain string, args []string) error {
	if len(args) < 1 {
		return errors.New("usage: export NAME… (writes an XEP-0227 document to standard output)")
	}
	var users []string
	for _, a := range args {
		u, err := admin.NormalizeUser(a)
		if err != nil {
			return fmt.Errorf("export: %q: %w", a, err)
		}
		users = append(users, u)
	}
	st, err := openIdle(dir)
	if errors.Is(err, errRunning) {
		return errStopFirst
	}
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriterSize(os.Stdout, 256<<10)
	if err := portable.Export(st, domain, users, w); err != nil {
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
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	st, err := openIdle(dir)
	if errors.Is(err, errRunning) {
		return errStopFirst
	}
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := portable.Import(st, domain, bufio.NewReaderSize(r, 256<<10), portable.Options{MapDomain: *mapDomain, MaxBytes: *maxMB << 20})
	if err != nil {
		return err
	}
	fmt.Printf("imported %s: %d contacts, %d vCards, %d private, %d PEP nodes (%d items), %d blocked, %d offline, %d archived\n",
		strings.Join(rep.Users, ", "), rep.Contacts, rep.VCards, rep.Private, rep.PEPNodes, rep.PEPItems, rep.Blocked, rep.Offline, rep.Archived)
	for _, s := range rep.Skipped {
		fmt.Printf("not imported (not understood): %s\n", s)
	}
	return nil
}
