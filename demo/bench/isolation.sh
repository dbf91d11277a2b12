#!/usr/bin/env bash
# The performance targets of issue #11 (function isolation), with the release binaries.
#
# For each mode in $MODES (local push) and each sandbox in $SANDBOXES (bwrap none) it starts a
# fresh private stack (redis-server on a free port, faas-gateway, faas-dispatcher and, for push,
# one faas-worker) with P=$PROCS Python slots and runs `faas bench --json`:
#   * single: $TASKS no-op tasks of one function, $CONC clients;
#   * mix:    the same over $FUNCS functions (--functions), each warm in a child of its own;
#   * cold:   $COLD first calls of newly registered functions (--cold-starts), one at a time.
# One JSON object per run goes to $OUT (default demo/bench/results/isolation.jsonl), with the
# fields "study_mode", "sandbox" and "kind" added; a one-line summary goes to the terminal.
#
# Usage: demo/bench/isolation.sh   (build first: cargo build --release -p faas-daemons --bins
#                                     -p faas-console --bin faas)
# Knobs (environment): MODES SANDBOXES PROCS TASKS CONC FUNCS COLD COLD_PAUSE_MS BIN FAAS_PYTHON
#                      OUT
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
PY=${FAAS_PYTHON:-$ROOT/.venv/bin/python}
MODES=${MODES-"local push"}
SANDBOXES=${SANDBOXES-"bwrap none"}
PROCS=${PROCS:-2}
TASKS=${TASKS:-20000}
CONC=${CONC:-64}
FUNCS=${FUNCS:-100}
COLD=${COLD:-200}
COLD_PAUSE_MS=${COLD_PAUSE_MS:-300}
OUT=${OUT:-$ROOT/demo/bench/results/isolation.jsonl}

WORK=$(mktemp -d /tmp/faas-isolation.XXXXXX)
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
PIDS=()

log() { printf '[isolation %s] %s\n' "$(date +%T)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Stops what start_stack started, newest first, each by its own pid (SIGTERM, then SIGKILL).
stop_stack() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() { stop_stack; rm -rf "$WORK"; }
trap cleanup EXIT

# start_stack MODE SANDBOX: sets GATEWAY.
start_stack() {
  local mode=$1 sandbox=$2 dir="$WORK/$1-$2"
  mkdir -p "$dir"
  local redis_port gw_port zmq_port
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    >"$dir/redis.log" 2>&1 &
  PIDS+=($!)
  local redis="redis://127.0.0.1:$redis_port"
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  gw_port=$(free_port)
  GATEWAY="http://127.0.0.1:$gw_port"
  "$BIN/faas-gateway" --listen "127.0.0.1:$gw_port" --redis "$redis" >"$dir/gateway.log" 2>&1 &
  PIDS+=($!)
  if [[ $mode == local ]]; then
    "$BIN/faas-dispatcher" -m local --procs "$PROCS" --python "$PY" --redis "$redis" \
      --sandbox "$sandbox" >"$dir/dispatcher.log" 2>&1 &
    PIDS+=($!)
  else
    zmq_port=$(free_port)
    "$BIN/faas-dispatcher" -m "$mode" -p "$zmq_port" --redis "$redis" >"$dir/dispatcher.log" 2>&1 &
    PIDS+=($!)
    "$BIN/faas-worker" "$mode" "tcp://127.0.0.1:$zmq_port" --procs "$PROCS" --python "$PY" \
      --sandbox "$sandbox" >"$dir/worker.log" 2>&1 &
    PIDS+=($!)
  fi
  local slots=0
  for _ in $(seq 200); do
    slots=$(curl -sf "$GATEWAY/workers" 2>/dev/null |
      python3 -c 'import json,sys; print(sum(w["slots"] for w in json.load(sys.stdin)))' 2>/dev/null || echo 0)
    [[ $slots == "$PROCS" ]] && break
    sleep 0.1
  done
  if [[ $slots != "$PROCS" ]]; then
    log "stack $mode/$sandbox did not come up (slots=$slots)"
    tail -5 "$dir"/*.log >&2
    exit 1
  fi
}

# run KIND MODE SANDBOX ARGS...: one bench run, appended to $OUT.
run() {
  local kind=$1 mode=$2 sandbox=$3
  shift 3
  local r
  r=$("$BIN/faas" bench --gateway "$GATEWAY" --json "$@")
  r=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(kind=sys.argv[2], study_mode=sys.argv[3], sandbox=sys.argv[4]); print(json.dumps(r))' \
    "$r" "$kind" "$mode" "$sandbox")
  echo "$r" >>"$OUT"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("[isolation] %(kind)6s %(study_mode)5s %(sandbox)5s: %(tasks)s tasks, %(throughput).0f/s, p50 %(p50_ms).2f ms, p90 %(p90_ms).2f ms, p99 %(p99_ms).2f ms, max %(max_ms).2f ms, %(failures)s failed" % r)' "$r"
}

for mode in $MODES; do
  for sandbox in $SANDBOXES; do
    log "stack: $mode, --sandbox $sandbox, P=$PROCS"
    start_stack "$mode" "$sandbox"
    run single "$mode" "$sandbox" --warmup 200 --tasks "$TASKS" --concurrency "$CONC"
    run mix "$mode" "$sandbox" --warmup 200 --tasks "$TASKS" --concurrency "$CONC" --functions "$FUNCS"
    run cold "$mode" "$sandbox" --cold-starts "$COLD" --cold-pause-ms "$COLD_PAUSE_MS"
    stop_stack
  done
done
log "results in $OUT"
