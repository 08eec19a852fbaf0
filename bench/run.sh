#!/usr/bin/env bash
# `make bench`: builds xmppd and the load generator, then measures xmppd,
# prosody and ejabberd one after the other on loopback. Each server runs
# pinned to CPU 0 (hearth-bench starts it through taskset); the load
# generator runs pinned to CPU 1. BENCH_QUICK=1 gives a short smoke run.
# Extra arguments go to hearth-bench (e.g. -servers hearth,prosody).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off

# 5000 sessions are 5000 sockets in the server and 5000 in the generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/xmppd" ./cmd/xmppd
go build -o "$bin/hearth-bench" ./cmd/hearth-bench

pin=(taskset -c 1)
server_cpu=0
if [ "$(nproc --all)" -lt 2 ]; then
  echo "bench: fewer than 2 CPUs, running without pinning" >&2
  pin=()
  server_cpu=
fi
# The full run takes about 12 minutes; the timeout is a backstop.
timeout 25m "${pin[@]}" "$bin/hearth-bench" -xmppd "$bin/xmppd" -bench-dir bench \
  -server-cpu "$server_cpu" -out "${BENCH_OUT:-out/bench.md}" "$@"
