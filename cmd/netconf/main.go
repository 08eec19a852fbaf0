// Command netconf keeps the box reachable (see package netconf), and asks a
// running netconf what it found:
//
//	netconf [-state DIR]            run (gokrazy starts it like this)
//	netconf status [-json]          the reachability report in plain words
//	netconf selftest                run the internet self-test now
//	netconf reload                  re-read the settings
//	netconf reset                   delete the router's port mappings
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hearthchat/hearth/appliance/clock"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/appliance/version"
	"github.com/hearthchat/hearth/netconf"
	"github.com/hearthchat/hearth/netconf/status"
)

func main() {
	var (
		stateDir = flag.String("state", state.DefaultDir, "state directory")
		local    = flag.Bool("local", false, "laptop mode (make run): no mDNS announcements; router, CA and tor only when the config enables them")
		upnp     = flag.Bool("upnp", false, "ask the router to open the chat ports even if the settings do not (make run UPNP=1)")
		selfAddr = flag.String("selftest-addr", "", "address the self-test dials instead of the domain's public one")
		showVer  = flag.Bool("version", false, "print the version and exit")
		debug    = flag.Bool("debug", false, "debug logging")
	)
	flag.Parse()
	if *showVer {
		fmt.Println(version.Version)
		return
	}
	dir := state.Dir(*stateDir)
	if flag.NArg() > 0 {
		os.Exit(command(dir, flag.Arg(0), flag.Args()[1:]))
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// gokrazy starts netconf beside xmppd in no fixed order: whichever comes
	// first raises the battery-less clock before certificates are judged.
	clock.Boot(dir.Clock(), log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s := netconf.New(netconf.Options{State: dir, Log: log, Local: *local, UPnP: *upnp, SelfTestAddr: *selfAddr})
	// SIGHUP re-reads the config, like the socket's /reload.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			s.Reload()
		}
	}()
	log.Info("netconf started", "version", version.Version, "state", dir)
	if err := s.Run(ctx); err != nil {
		log.Error("netconf", "err", err)
		os.Exit(1)
	}
}

func command(dir state.Dir, cmd string, args []string) int {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Parse(args)
	var (
		body []byte
		err  error
	)
	switch cmd {
	case "status":
		body, err = call(dir, "GET", "/status")
		if err != nil {
			// netconf is not running: the last report it wrote is
			// still worth showing, marked as such.
			b, ferr := os.ReadFile(filepath.Join(dir.Status(), "netconf.json"))
			if ferr != nil {
				fmt.Fprintf(os.Stderr, "netconf is not running (%v) and has written no report yet\n", err)
				return 1
			}
			fmt.Fprintf(os.Stderr, "netconf is not running (%v); its last report:\n", err)
			body = b
			err = nil
		}
	case "selftest":
		body, err = call(dir, "POST", "/selftest")
	case "reload", "reset":
		_, err = call(dir, "POST", "/"+cmd)
		if err == nil {
			fmt.Println("done")
			return 0
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q (status, selftest, reload, reset)\n", cmd)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netconf:", err)
		return 1
	}
	if *asJSON {
		os.Stdout.Write(body)
		fmt.Println()
		return 0
	}
	var r status.Report
	if err := json.Unmarshal(body, &r); err != nil {
		fmt.Fprintln(os.Stderr, "netconf: bad report:", err)
		return 1
	}
	printReport(os.Stdout, r)
	if r.Worst() == status.Error {
		return 3
	}
	return 0
}

var marks = map[status.Level]string{status.OK: "ok ", status.Warn: "!! ", status.Error: "XX ", status.Off: "-- ", status.Pending: ".. "}

func printReport(w io.Writer, r status.Report) {
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s%s: %s\n", marks[c.Level], c.Title, c.Message)
		if c.Action != "" {
			fmt.Fprintf(w, "    What to do: %s\n", c.Action)
		}
	}
	fmt.Fprintf(w, "(as of %s)\n", r.Updated.Local().Format(time.DateTime))
}

func call(dir state.Dir, method, path string) ([]byte, error) {
	c := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", dir.NetconfSocket())
		}},
	}
	req, err := http.NewRequest(method, "http://netconf"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, err
}
