#!/usr/bin/env bash
# 1,000 `/events` subscribers on one gateway under `faas bench` load (issue #15's target: gateway
# RSS under 100 MiB, every subscriber within 100 ms of the events). Starts a private stack
# (redis-server on a free port, faas-gateway, faas-dispatcher -m local -w P) with the release
# binaries, runs `faas bench --subscribers N` against it (N `GET /events` streams read by
# the bench process, which reports their lag), samples the gateway's RSS from /proc every 100 ms
# meanwhile, and stops everything by pid.
#
# Usage: demo/bench/events_fanout.sh [faas bench args]
#   e.g. demo/bench/events_fanout.sh --subscribers 1000 --tasks 2000 -c 4 --warmup 50
# Build first: cargo build --release -p faas-daemons --bins -p faas-console --bin faas
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
PY=${FAAS_PYTHON:-$ROOT/.venv/bin/python}
PROCS=${PROCS:-2}
NAME=events_fanout
. "$ROOT/demo/bench/stack.sh"
start_redis
start_gateway
"$BIN/faas-dispatcher" -m local -w "$PROCS" --python "$PY" --redis "redis://127.0.0.1:$RPORT" >"$WORK/dispatcher.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
  slots=$(curl -sf "http://127.0.0.1:$GPORT/workers" 2>/dev/null |
    python3 -c 'import json,sys; print(sum(w["slots"] for w in json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [[ $slots == "$PROCS" ]] && break
  sleep 0.1
done
ulimit -n 65536 2>/dev/null || true
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status"; }
echo "gateway RSS idle: $(($(rss) / 1024)) MiB"
(
  peak=0
  while kill -0 "$GW_PID" 2>/dev/null; do
    r=$(rss 2>/dev/null || echo 0)
    ((r > peak)) && peak=$r && echo "$peak" >"$WORK/peak"
    sleep 0.1
  done
) &
SAMPLER=$!
status=0
"$BIN/faas" bench --gateway "http://127.0.0.1:$GPORT" "$@" || status=$?
kill "$SAMPLER" 2>/dev/null || true
echo "gateway RSS peak: $(($(cat "$WORK/peak" 2>/dev/null || echo 0) / 1024)) MiB"
exit "$status"
