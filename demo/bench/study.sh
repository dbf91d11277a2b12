#!/usr/bin/env bash
# The performance study of issue #6, on this machine, with the release binaries.
#
# For each dispatch mode (local, push, pull) it starts a fresh private stack (redis-server on a
# free port, faas-gateway, faas-dispatcher and, for push/pull, one faas-worker with P Python
# processes) and runs `faas bench --json` against it:
#   * weak scaling: 5 tasks per process at P = 1, 2, 4, 8, no-op and sleep(100 ms) tasks, all
#     in flight at once (concurrency = tasks), as in the original project's evaluation;
#   * throughput (P in $BIG_PROCS, "2 4" by default): 20,000 no-op tasks with 64 clients, the
#     same through /execute_batch, and single-task round trips (concurrency 1);
#   * sleep(100 ms) tasks on 8 processes, long enough for a steady state;
#   * optionally (MILLION=1) a million tasks through /execute_batch, sampling every daemon's RSS.
# Each run also records the Redis commands per task (INFO commandstats delta over the run,
# divided by the tasks it ran, warm-up included), peak RSS and CPU seconds of each daemon.
# Results: $OUT/results.jsonl (one object per run), then analyze.py writes summary.md and the
# plot weak_scaling.png (matplotlib from a throwaway venv under /tmp).
#
# Usage: demo/bench/study.sh   (build first: cargo build --release -p faas-daemons --bins
#                                 -p faas-console --bin faas)
# Knobs (environment): MODES PROCS SLEEP_MS BIG_TASKS BIG_CONC BIG_PROCS BATCH RTT_TASKS MILLION
#                      BENCH (the bench command) BIN (daemon binaries) FAAS_PYTHON OUT PLOT
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/demo/bench"
BIN=${BIN:-$ROOT/target/release}
PY=${FAAS_PYTHON:-$ROOT/.venv/bin/python}
BENCH=${BENCH:-"$BIN/faas bench"}
OUT=${OUT:-$HERE/results}
MODES=${MODES-"local push pull"}
PROCS=${PROCS-"1 2 4 8"}
SLEEP_MS=${SLEEP_MS:-100}
BIG_TASKS=${BIG_TASKS:-20000}
BIG_CONC=${BIG_CONC:-64}
BIG_PROCS=${BIG_PROCS:-"2 4"}
BATCH=${BATCH:-1000}
RTT_TASKS=${RTT_TASKS:-2000}
MILLION=${MILLION:-0}
PLOT=${PLOT:-$HERE/weak_scaling.png}

WORK=$(mktemp -d /tmp/faas-study.XXXXXX)
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
PIDS=()

# One line about a result, for the terminal.
SHOW='
import json, sys
r = json.loads(sys.stdin.read())
print("[study] %(kind)9s %(study_mode)5s P=%(procs)s: %(tasks)s tasks, %(throughput).0f/s "
      "(submit %(submit_rate).0f/s), p50 %(p50_ms).2f ms, p99 %(p99_ms).2f ms, "
      "%(redis_cmds_per_task)s redis cmds/task, %(failures)s failed" % r)'

log() { printf '[study %s] %s\n' "$(date +%T)" "$*" >&2; }

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
# Logs stay in $WORK when the study fails, and go when it succeeds.
trap stop_stack EXIT

# start_stack MODE P: sets GATEWAY, REDIS_PORT and the pids GW_PID, DISP_PID, WORKER_PID.
start_stack() {
  local mode=$1 procs=$2 dir="$WORK/$1-$2"
  mkdir -p "$dir"
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    >"$dir/redis.log" 2>&1 &
  PIDS+=($!)
  local redis="redis://127.0.0.1:$REDIS_PORT"
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
  local gw_port
  gw_port=$(free_port)
  GATEWAY="http://127.0.0.1:$gw_port"
  "$BIN/faas-gateway" --listen "127.0.0.1:$gw_port" --redis "$redis" >"$dir/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  WORKER_PID=""
  if [[ $mode == local ]]; then
    "$BIN/faas-dispatcher" -m local --procs "$procs" --python "$PY" --redis "$redis" \
      >"$dir/dispatcher.log" 2>&1 &
    DISP_PID=$!
    PIDS+=("$DISP_PID")
  else
    local zmq_port
    zmq_port=$(free_port)
    "$BIN/faas-dispatcher" -m "$mode" -p "$zmq_port" --redis "$redis" >"$dir/dispatcher.log" 2>&1 &
    DISP_PID=$!
    PIDS+=("$DISP_PID")
    "$BIN/faas-worker" "$mode" "tcp://127.0.0.1:$zmq_port" --procs "$procs" --python "$PY" \
      >"$dir/worker.log" 2>&1 &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
  fi
  # Ready when the gateway answers and the registry holds all P slots.
  local slots=0
  for _ in $(seq 200); do
    slots=$(curl -sf "$GATEWAY/workers" 2>/dev/null |
      python3 -c 'import json,sys; print(sum(w["slots"] for w in json.load(sys.stdin)))' 2>/dev/null || echo 0)
    [[ $slots == "$procs" ]] && break
    sleep 0.1
  done
  if [[ $slots != "$procs" ]]; then
    log "stack $mode/$procs did not come up (slots=$slots); logs in $dir"
    tail -5 "$dir"/*.log >&2
    exit 1
  fi
}

# Sum of `calls=` over every command in INFO commandstats, and the whole section as JSON.
redis_calls() {
  redis-cli -p "$REDIS_PORT" info commandstats | python3 -c '
import json, re, sys
stats = {m[1]: int(m[2]) for m in re.finditer(r"cmdstat_([^:]+):calls=(\d+)", sys.stdin.read())}
print(json.dumps(stats))'
}

# CPU seconds (user + system) of a pid, plus its direct children (the Python processes).
cpu_secs() {
  local pid=$1 total=0 p
  [[ -z $pid ]] && { echo 0; return; }
  for p in "$pid" $(pgrep -P "$pid" || true); do
    [[ -r /proc/$p/stat ]] || continue
    # Fields 14 and 15 after the ")" that ends the command name.
    total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  python3 -c "import os; print($total / os.sysconf('SC_CLK_TCK'))"
}

# Peak resident set of a pid in KiB (VmHWM), 0 if it is gone.
peak_rss() { [[ -n ${1:-} ]] && awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# bench KIND MODE PROCS WARMUP BENCH-FLAGS...: one `faas bench --json` run, recorded with its
# Redis commands, CPU and memory.
bench() {
  local kind=$1 mode=$2 procs=$3 warmup=$4
  shift 4
  local before after report cpu0 cpu1 started ended rc=0
  before=$(redis_calls)
  cpu0="$(cpu_secs "$GW_PID") $(cpu_secs "$DISP_PID") $(cpu_secs "$WORKER_PID") $(cpu_secs "${PIDS[0]}")"
  started=$(date +%s.%N)
  # shellcheck disable=SC2086 # BENCH is a command with arguments
  report=$($BENCH --gateway "$GATEWAY" --json --warmup "$warmup" "$@" 2>"$WORK/bench.err") || rc=$?
  ended=$(date +%s.%N)
  cpu1="$(cpu_secs "$GW_PID") $(cpu_secs "$DISP_PID") $(cpu_secs "$WORKER_PID") $(cpu_secs "${PIDS[0]}")"
  after=$(redis_calls)
  if [[ -z $report ]]; then
    # A run without a report (the warm-up failed) is kept as a failure row, and tried once
    # more on the same stack, so one bad run neither stops the study nor goes unreported.
    local why
    why=$(head -1 "$WORK/bench.err")
    log "$kind $mode/$procs: no report (exit $rc): $why"
    python3 -c 'import json, sys; print(json.dumps(dict(kind=sys.argv[1], study_mode=sys.argv[2], procs=int(sys.argv[3]), error=sys.argv[4])))' \
      "$kind" "$mode" "$procs" "$why" >>"$RESULTS"
    if [[ -z ${RETRYING:-} ]]; then
      RETRYING=1 bench "$kind" "$mode" "$procs" "$warmup" "$@"
    fi
    return
  fi
  python3 - "$kind" "$mode" "$procs" "$warmup" "$before" "$after" "$report" "$cpu0" "$cpu1" \
    "$started" "$ended" "$(peak_rss "$GW_PID")" "$(peak_rss "$DISP_PID")" \
    "$(peak_rss "$WORKER_PID")" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS" <<'PY'
import json, sys
(kind, mode, procs, warmup, before, after, report, cpu0, cpu1, started, ended,
 rss_gw, rss_disp, rss_worker, load) = sys.argv[1:]
before, after, r = json.loads(before), json.loads(after), json.loads(report)
delta = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
delta["info"] = delta.get("info", 1) - 1  # the INFO that took the "after" snapshot
delta = {k: v for k, v in delta.items() if v > 0}
ran = r["tasks"] + int(warmup)
elapsed = float(ended) - float(started)
c0, c1 = map(float, cpu0.split()), map(float, cpu1.split())
cpu = {name: round((b - a) / elapsed, 3)
       for name, a, b in zip(["gateway", "dispatcher", "worker", "redis"], c0, c1)}
r.update(kind=kind, study_mode=mode, procs=int(procs), warmup=int(warmup),
         redis_commands=delta, redis_cmds_per_task=round(sum(delta.values()) / ran, 2),
         cpu_cores=cpu, rss_kib={"gateway": int(rss_gw), "dispatcher": int(rss_disp),
                                 "worker": int(rss_worker)}, loadavg_before=float(load))
print(json.dumps(r))
PY
  tail -1 "$RESULTS" | python3 -c "$SHOW" >&2
}

# Samples the RSS (KiB) of every daemon and Redis every 2 s while the million-task run goes.
sample_rss() {
  local file=$1
  echo "t_s,gateway_kib,dispatcher_kib,redis_kib,queue_len" >"$file"
  local t0=$SECONDS
  while kill -0 "$GW_PID" 2>/dev/null; do
    echo "$((SECONDS - t0)),$(awk '/VmRSS/ {print $2}' /proc/"$GW_PID"/status),$(awk '/VmRSS/ {print $2}' /proc/"$DISP_PID"/status),$(awk '/VmRSS/ {print $2}' /proc/"${PIDS[0]}"/status),$(redis-cli -p "$REDIS_PORT" xlen faas:queue)" >>"$file"
    sleep 2
  done
}

log "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $MODES; do
  for p in $PROCS; do
    start_stack "$mode" "$p"
    n=$((5 * p))
    bench weak-noop "$mode" "$p" "$((2 * p))" --tasks "$n" --concurrency "$n"
    bench weak-sleep "$mode" "$p" "$((2 * p))" --tasks "$n" --concurrency "$n" --sleep-ms "$SLEEP_MS"
    if [[ $p == 8 ]]; then
      bench sleep8 "$mode" "$p" 16 --tasks 320 --concurrency 64 --sleep-ms "$SLEEP_MS"
    fi
    stop_stack
  done
  for bp in $BIG_PROCS; do
    start_stack "$mode" "$bp"
    bench noop "$mode" "$bp" 200 --tasks "$BIG_TASKS" --concurrency "$BIG_CONC"
    bench batch "$mode" "$bp" 200 --tasks "$BIG_TASKS" --concurrency "$BIG_CONC" --batch "$BATCH"
    bench rtt "$mode" "$bp" 200 --tasks "$RTT_TASKS" --concurrency 1
    stop_stack
  done
done

if [[ $MILLION == 1 ]]; then
  million_procs=${BIG_PROCS%% *}
  start_stack local "$million_procs"
  sample_rss "$OUT/million_rss.csv" &
  sampler=$!
  bench million local "$million_procs" 200 --tasks 1000000 --concurrency 64 --batch 10000 \
    --task-timeout-ms 3600000
  stop_stack
  wait "$sampler" 2>/dev/null || true
fi

# The plot needs matplotlib: a throwaway venv, reused across runs of this script.
VENV=/tmp/faas-bench-venv
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  log "installing matplotlib into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q matplotlib
fi
"$VENV/bin/python" "$HERE/analyze.py" "$RESULTS" "$OUT/summary.md" "$PLOT"
rm -rf "$WORK"
log "done: $RESULTS, $OUT/summary.md, $PLOT"
