#!/usr/bin/env bash
# `GET /tasks?limit=50` against 1,000,000 tasks (issue #15: p50 under 5 ms).
#
# Starts a private redis-server and faas-gateway (no dispatcher: nothing runs), registers one
# function, then fills Redis with $TASKS task records and their listing indexes with the Lua
# loader `load_tasks` of stack.sh (what the platform's scripts write; protocol/src/keys.rs),
# $CHUNK per call, and times $REQS sequential GET /tasks requests of each shape (no filter, a status, a
# function, status+function, and page 2 through a cursor) with curl's time_total. Prints
# p50/p95/p99 in ms per shape. Everything it started is stopped on exit.
#
# Usage: demo/bench/task_list.sh   (build first: cargo build --release -p faas-daemons --bins)
# Knobs (environment): TASKS (1000000) CHUNK (20000) REQS (300) BIN
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
NAME=task_list
. "$ROOT/demo/bench/stack.sh"
TASKS=${TASKS:-1000000}
CHUNK=${CHUNK:-20000}
REQS=${REQS:-300}

start_redis
start_gateway
register_noop

# A quarter of the tasks COMPLETED, the rest QUEUED.
load_tasks "$TASKS" "$CHUNK" 4

CURSOR=$(curl -fs "$GW/tasks?limit=50" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
time_it() {
  local name=$1 url=$2
  for ((i = 0; i < REQS; i++)); do
    curl -s -o /dev/null -w '%{time_total}\n' "$url"
  done | python3 -c '
import sys
t = sorted(float(x) * 1000 for x in sys.stdin)
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print(f"{sys.argv[1]:<28} n={len(t)} p50={q(0.50):.2f} ms p95={q(0.95):.2f} ms p99={q(0.99):.2f} ms")' "$name"
}
time_it "limit=50" "$GW/tasks?limit=50"
time_it "status=QUEUED" "$GW/tasks?limit=50&status=QUEUED"
time_it "status=COMPLETED" "$GW/tasks?limit=50&status=COMPLETED"
time_it "function_id" "$GW/tasks?limit=50&function_id=$FID"
time_it "status=COMPLETED+function" "$GW/tasks?limit=50&status=COMPLETED&function_id=$FID"
time_it "page 2 (cursor)" "$GW/tasks?limit=50&cursor=$CURSOR"
# Redis's own time per listing script call (less sensitive to a loaded machine than HTTP).
redis-cli -p "$RPORT" INFO commandstats | grep -E '^cmdstat_(evalsha|eval):' >&2 || true
