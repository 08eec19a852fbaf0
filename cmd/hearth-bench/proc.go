package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sample is one reading of a server's whole process tree (ejabberd is
// beam.smp plus erl_child_setup; Prosody and xmppd are one process).
type sample struct {
	rssKB int64
	// rssAnonKB is RssAnon over the tree: VmRSS less file-backed pages
	// (xmppd's bbolt file is mmapped, so its VmRSS after the messaging
	// phases is mostly the database's reclaimable page cache) and shmem.
	rssAnonKB int64
	cpuTicks  int64 // utime+stime of every process in the tree
	ctxsw     int64 // voluntary+nonvoluntary switches over every thread
	runDelay  int64 // ns spent runnable but waiting for a CPU, over every thread
	// cpuNS is time on a CPU, ns, over every live thread (schedstat): the
	// same accounting utime+stime come from, without rounding to 10 ms
	// ticks (at 50 msg/s a window holds only a few ticks of work).
	cpuNS int64
	// from /proc/PID/io over the tree
	writeBytes, syscw int64
	procs             int
}

// clkTck is USER_HZ, 100 on every Linux we run on.
const clkTck = 100

// tree lists pid and all its descendants, found through /proc/*/stat.
func tree(pid int) []int {
	parent := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(p)
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[pp] = append(parent[pp], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, parent[out[i]]...)
	}
	return out
}

// statFields returns the fields of /proc/PID/stat after the command name:
// [0]=state, [1]=ppid, … [11]=utime, [12]=stime.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func statusField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key) {
			v := strings.Fields(line[len(key):])
			if len(v) > 0 {
				n, _ := strconv.ParseInt(v[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func measure(pid int) sample {
	var s sample
	for _, p := range tree(pid) {
		f := statFields(p)
		if len(f) < 13 {
			continue
		}
		s.procs++
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		s.cpuTicks += ut + st
		s.rssKB += statusField(fmt.Sprintf("/proc/%d/status", p), "VmRSS:")
		s.rssAnonKB += statusField(fmt.Sprintf("/proc/%d/status", p), "RssAnon:")
		io := fmt.Sprintf("/proc/%d/io", p)
		s.writeBytes += statusField(io, "write_bytes:")
		s.syscw += statusField(io, "syscw:")
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", p))
		for _, t := range tasks {
			s.ctxsw += statusField(t, "voluntary_ctxt_switches:") +
				statusField(t, "nonvoluntary_ctxt_switches:")
			on, wait := schedstat(filepath.Join(filepath.Dir(t), "schedstat"))
			s.cpuNS += on
			s.runDelay += wait
		}
	}
	return s
}

// selfCPU is this process's own CPU time in seconds, to notice when the
// load generator rather than the server is the bottleneck.
func selfCPU() float64 {
	f := statFields(os.Getpid())
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / clkTck
}

// schedstat reads /proc/…/schedstat: time on a CPU and time spent on a
// run queue waiting for one (ns). Other work on the machine shows up in
// the second, and it is what turns into latency outliers that are
// nobody's fault.
func schedstat(path string) (onCPU, wait int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0
	}
	onCPU, _ = strconv.ParseInt(f[0], 10, 64)
	wait, _ = strconv.ParseInt(f[1], 10, 64)
	return onCPU, wait
}
