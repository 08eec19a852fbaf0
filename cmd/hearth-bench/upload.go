package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// The upload phase (issue 11): one file through XEP-0363 HTTP File Upload
// on each server — a slot asked for over XMPP, the PUT to the slot's URL,
// the GET back, compared byte for byte — and the server's resident memory
// while the PUT streams in. A Pi has 1 GiB for everything, so what matters
// is whether the server holds the file in memory.

const nsUpload = "urn:xmpp:http:upload:0"

type uploadResult struct {
	size      int64
	slot      time.Duration // slot request to answer
	put, get  time.Duration
	identical bool
	status    int // the PUT's HTTP status
	// RSS of the server's process tree (sum of VmRSS), KiB: just before
	// the PUT, and the highest of the samples taken every 10 ms during it
	rssBefore, rssPeak int64
	samples            int
	// VmHWM of the main process after clear_refs reset it to the current
	// RSS just before the PUT (0 when the reset was refused): catches a
	// peak between two samples
	hwmBefore, hwmAfter int64
	serverCPU           float64 // s, on-CPU during the PUT (schedstat)
}

// slotURLs is what a slot answer holds.
type slotURLs struct {
	put, get string
	headers  map[string]string
}

// parseSlot reads an XEP-0363 §4 slot answer. Only the headers §4 allows
// a client to pass on are kept (Authorization, Cookie, Expires); the put
// and get URLs must be http(s).
func parseSlot(el *stream.Element) (slotURLs, error) {
	var s slotURLs
	slot := el.Child(nsUpload, "slot")
	if slot == nil {
		return s, fmt.Errorf("no <slot/> in the answer: %s", el)
	}
	put, get := slot.Child(nsUpload, "put"), slot.Child(nsUpload, "get")
	if put == nil || get == nil {
		return s, fmt.Errorf("slot without put or get: %s", el)
	}
	s.put, s.get = put.Get("url"), get.Get("url")
	for _, u := range []string{s.put, s.get} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return s, fmt.Errorf("slot URL %q is not an http(s) URL", u)
		}
	}
	s.headers = map[string]string{}
	for _, h := range put.Children() {
		if h.Local != "header" {
			continue
		}
		switch n := http.CanonicalHeaderKey(strings.TrimSpace(h.Get("name"))); n {
		case "Authorization", "Cookie", "Expires":
			s.headers[n] = strings.ReplaceAll(strings.ReplaceAll(h.Text(), "\n", ""), "\r", "")
		}
	}
	return s, nil
}

// loopbackClient is an HTTP client whose every connection goes to
// 127.0.0.1 at the URL's port, whatever host the URL names: slot URLs
// name upload.<domain> or <domain>, which nothing resolves here, and the
// network rule allows loopback only. The Host header stays the URL's, so
// each server picks its virtual host as it would for a phone. No proxy
// from the environment.
func loopbackClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
		DisableCompression: true,
	}}
}

// samplePeak calls read every `every` until stop is closed and returns
// the highest value it saw and how many samples it took; read's zero
// (process gone, file unreadable) is not a sample.
func samplePeak(read func() int64, every time.Duration, stop <-chan struct{}) (peak int64, n int) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	take := func() {
		if v := read(); v > 0 {
			peak = max(peak, v)
			n++
		}
	}
	take()
	for {
		select {
		case <-stop:
			take()
			return peak, n
		case <-tk.C:
			take()
		}
	}
}

// rssOf sums VmRSS (KiB) over pids; cheaper than measure, which also
// reads every thread's counters, so it can run every 10 ms.
func rssOf(pids []int) int64 {
	var kb int64
	for _, p := range pids {
		kb += statusField(fmt.Sprintf("/proc/%d/status", p), "VmRSS:")
	}
	return kb
}

// resetHWM asks the kernel to reset pid's peak RSS (VmHWM) to its
// current RSS (clear_refs 5, Linux ≥ 4.0); false when not allowed.
func resetHWM(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// benchFile is the upload's content: pseudo-random, so no layer can
// compress it, and the same on every server.
func benchFile(size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'h', 'e', 'a', 'r', 't', 'h'}), size)
}

// uploadPhase runs the phase with a session of its own, for account
// number acc (one the message pairs do not use: a second login with the
// same resource would end theirs).
func uploadPhase(o *options, name string, pid int, l *loader, acc int, r *result) error {
	ss, _, err := l.openSessions(acc, acc+1, 1, false, time.Minute)
	if err != nil {
		return fmt.Errorf("upload session: %w", err)
	}
	defer closeAll(ss)
	x, err := upload(pid, ss[0], "upload."+o.domain, o.uploadSize, 3*time.Minute)
	r.up = x
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	log.Printf("%s: upload %d MiB: PUT %v (%.1f MiB/s), GET %v, identical %v, RSS %d → peak %d KiB (+%.1f MiB), VmHWM +%.1f MiB",
		name, x.size>>20, x.put.Round(time.Millisecond), mibPerSec(x.size, x.put), x.get.Round(time.Millisecond), x.identical,
		x.rssBefore, x.rssPeak, float64(x.rssPeak-x.rssBefore)/1024, float64(x.hwmAfter-x.hwmBefore)/1024)
	return nil
}

func mibPerSec(size int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(size) / (1 << 20) / d.Seconds()
}

// upload asks service for a slot for a file of size bytes, PUTs it while
// sampling the server's memory, GETs it back and compares. Everything
// within limit.
func upload(pid int, s *session, service string, size int64, limit time.Duration) (uploadResult, error) {
	x := uploadResult{size: size}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	ans, err := s.iq("get", service, fmt.Sprintf("<request xmlns='%s' filename='bench.bin' size='%d' content-type='application/octet-stream'/>", nsUpload, size), 10*time.Second)
	if err != nil {
		return x, fmt.Errorf("slot: %w", err)
	}
	x.slot = time.Since(t0)
	slot, err := parseSlot(ans)
	if err != nil {
		return x, err
	}
	hc := loopbackClient()
	defer hc.CloseIdleConnections()

	// Baseline: what the server holds before the PUT starts.
	pids := tree(pid)
	x.rssBefore = rssOf(pids)
	if resetHWM(pid) {
		x.hwmBefore = statusField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		x.rssPeak, x.samples = samplePeak(func() int64 { return rssOf(pids) }, 10*time.Millisecond, stop)
	}()
	m0 := measure(pid)
	sum := sha256.New()
	req, err := http.NewRequestWithContext(ctx, "PUT", slot.put, io.TeeReader(benchFile(size), sum))
	if err != nil {
		close(stop)
		wg.Wait()
		return x, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	for k, v := range slot.headers {
		req.Header.Set(k, v)
	}
	t1 := time.Now()
	resp, err := hc.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
	}
	x.put = time.Since(t1)
	x.serverCPU = float64(measure(pid).cpuNS-m0.cpuNS) / 1e9
	close(stop)
	wg.Wait()
	if x.hwmBefore > 0 {
		x.hwmAfter = statusField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:")
	}
	if err != nil {
		return x, fmt.Errorf("PUT: %w", err)
	}
	x.status = resp.StatusCode
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return x, fmt.Errorf("PUT %s: %s", slot.put, resp.Status)
	}
	want := sum.Sum(nil)

	req, err = http.NewRequestWithContext(ctx, "GET", slot.get, nil)
	if err != nil {
		return x, err
	}
	t2 := time.Now()
	resp, err = hc.Do(req)
	if err != nil {
		return x, fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return x, fmt.Errorf("GET %s: %s", slot.get, resp.Status)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	x.get = time.Since(t2)
	if err != nil {
		return x, fmt.Errorf("GET body: %w", err)
	}
	x.identical = n == size && string(got.Sum(nil)) == string(want)
	if !x.identical {
		return x, errors.New("GET returned " + strconv.FormatInt(n, 10) + " bytes that differ from what was PUT")
	}
	return x, nil
}
