package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// XMPPD_PPROF=127.0.0.1:PORT serves Go's profiles (net/http/pprof) on a
// loopback address, for finding where the CPU per message goes under
// `make bench` (bench/README.md). An environment variable rather than a
// flag so that the bench can turn it on without a new command line, and
// refused on anything but loopback: a profile shows members' stanzas.
func init() {
	addr := os.Getenv("XMPPD_PPROF")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		os.Stderr.WriteString("xmppd: XMPPD_PPROF must be a loopback HOST:PORT; profiling off\n")
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// A subcommand (useradd, health) run while the daemon profiles.
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go http.Serve(ln, mux)
}
