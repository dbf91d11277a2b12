#!/usr/bin/env bash
# faas-console under a flood of task events (issue #13: under 8,000 tasks/s of events it stays
# under 5 % CPU and keeps up: its counts match the gateway's within a second).
#
# A 2-core machine cannot run 8,000 real tasks/s, so the load is synthetic: a private
# redis-server and faas-gateway (no dispatcher, no worker), the console in a private tmux server
# on the Overview screen, and console_events.py publishing per task the QUEUED, RUNNING and
# COMPLETED events the platform's scripts publish (3 messages per task) and bumping the
# `faas:stats` counters the console shows. Reported: the console's CPU (of one core, from
# /proc/PID/stat) idle for IDLE s and under load, its RSS, and whether it keeps up: near the
# end of the load the Completed count on screen is compared with `faas:stats` read right
# after the capture (behind by at most one second's worth of tasks passes), its event-driven
# "last second" rate with the publish rate, and after the load its counts with the final ones.
#
# Usage: demo/bench/console_events.sh
#   (build first: cargo build --release -p faas-console --bin faas-console -p faas-daemons --bin faas-gateway)
# Knobs (environment): RATE tasks/s (8000)  LOAD seconds of load (20)  IDLE seconds (20)
#   BIN (target/release)  TAB screen during the load (1)  SIZE of the terminal (120x40)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
NAME=console-events
SOCK="faas-console-events-$$"
. "$ROOT/demo/bench/stack.sh"
RATE=${RATE:-8000}
LOAD=${LOAD:-20}
IDLE=${IDLE:-20}
TAB=${TAB:-1}
SIZE=${SIZE:-120x40}
for b in faas-gateway faas-console; do
  [[ -x $BIN/$b ]] || { log "no $BIN/$b: build it (see Usage) or set BIN"; exit 1; }
done

start_redis
start_gateway
# A registered function for the events to name, as on a real platform.
register_noop

tmux -L "$SOCK" new-session -d -x "${SIZE%x*}" -y "${SIZE#*x}" \
  "$BIN/faas-console --redis redis://127.0.0.1:$RPORT --gateway $GW"
screen() { tmux -L "$SOCK" capture-pane -p; }
for ((i = 0; ; i++)); do
  [[ $(screen | grep -o 'connected' | wc -l) -ge 2 ]] && break
  ((i < 300)) || { log "the console did not connect within 30 s:"; screen; exit 1; }
  sleep 0.1
done
PANE=$(tmux -L "$SOCK" display-message -p '#{pane_pid}')
CPID=$PANE
if pgrep -P "$PANE" >/dev/null; then CPID=$(pgrep -P "$PANE"); fi
log "console pid $CPID ($(cat /proc/$CPID/comm)), redis :$RPORT, gateway :$GPORT, load on screen $TAB"
tmux -L "$SOCK" send-keys "$TAB"
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
pct() { python3 -c "print(f'{($2-$1)/$TCK/$3*100:.2f}')"; }
stat_completed() { redis-cli -p "$RPORT" HGET faas:stats completed; }

# Idle: connected, nothing happening.
sleep 2
t0=$(ticks "$CPID"); sleep "$IDLE"; t1=$(ticks "$CPID")
IDLE_PCT=$(pct "$t0" "$t1" "$IDLE")
log "idle CPU over $IDLE s: $IDLE_PCT %"

# Load.
python3 "$ROOT/demo/bench/console_events.py" "$RPORT" "$RATE" "$LOAD" "$FID" >"$WORK/publisher.json" &
PUB=$!
PIDS+=($PUB)
START=$(date +%s%N)
c0=$(ticks "$CPID"); r0=$(ticks "$REDIS_PID")
# One sample a second (time in ns, console ticks) until two seconds before the load ends.
SAMPLES=("$START:$c0")
END=$((START + (LOAD - 2) * 1000000000))
while (($(date +%s%N) < END)); do
  sleep 1
  SAMPLES+=("$(date +%s%N):$(ticks "$CPID")")
done
# Still under load: what the console shows against the counters right after.
screen >"$WORK/under_load.txt"
AFTER_CAPTURE=$(stat_completed)
c1=$(ticks "$CPID"); r1=$(ticks "$REDIS_PID")
ELAPSED=$(python3 -c "print(($(date +%s%N) - $START) / 1e9)")
wait "$PUB"
LOAD_PCT=$(pct "$c0" "$c1" "$ELAPSED")
REDIS_PCT=$(pct "$r0" "$r1" "$ELAPSED")
# After the load: the final counts should be on screen within a poll or two.
FINAL=$(stat_completed)
sleep 1.5
screen >"$WORK/after.txt"
RSS=$(awk '/VmRSS/{print $2/1024 " MiB"}' "/proc/$CPID/status")
HWM=$(awk '/VmHWM/{print $2/1024 " MiB"}' "/proc/$CPID/status")

python3 - "$WORK" "$RATE" "$AFTER_CAPTURE" "$FINAL" "$IDLE_PCT" "$LOAD_PCT" "$REDIS_PCT" \
  "$RSS" "$HWM" "${SAMPLES[*]}" "$TAB" "$TCK" <<'EOF'
import json, re, sys
work, rate, after_capture, final, idle, load, redis_pct, rss, hwm, samples, tab, tck = sys.argv[1:]
pairs = [tuple(map(int, s.split(":"))) for s in samples.split()]
per_second = " ".join(
    f"{(c1 - c0) / int(tck) / ((t1 - t0) / 1e9) * 100:.0f}" for (t0, c0), (t1, c1) in zip(pairs, pairs[1:])
)
rate, after_capture, final = int(rate), int(after_capture), int(final)
pub = json.load(open(f"{work}/publisher.json"))

def completed(text):
    """The Completed box of the Overview: the numbers line under the four box titles."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if "┌Queued" in l and i + 2 < len(lines):
            nums = re.findall(r"[\d,]+|—", lines[i + 2])
            return int(nums[2].replace(",", "")) if len(nums) == 4 and nums[2] != "—" else None
    return None

def last_second(text):
    m = re.search(r"last second ([\d,]+)/s", text)
    return int(m.group(1).replace(",", "")) if m else None

under = open(f"{work}/under_load.txt").read()
after = open(f"{work}/after.txt").read()
shown, shown_rate, shown_final = completed(under), last_second(under), completed(after)
ok = True
print(f"publisher: {pub['tasks']:,} tasks in {pub['seconds']} s = {pub['rate']:,} tasks/s "
      f"({pub['messages']:,} event messages, worst step overrun {pub['worst_overrun_ms']} ms)")
print(f"console CPU (of one core): idle {idle} %, under load {load} % "
      f"(per second: {per_second}); redis-server {redis_pct} %")
print(f"console RSS at the end {rss}, peak {hwm}")
if tab != "1" or shown is None:
    print("keeps up: not checked (the Overview was not on screen)")
else:
    lag = after_capture - shown
    within = lag <= rate
    ok &= within
    print(f"keeps up under load: Completed on screen {shown:,}, faas:stats right after {after_capture:,}: "
          f"behind by {lag:,} ({lag / rate:.2f} s of load) -> {'OK' if within else 'BEHIND'}")
    print(f"  its event-driven 'last second' rate: {shown_rate}/s (published {pub['rate']:,}/s)")
    done = shown_final == final
    ok &= done
    print(f"after the load: Completed on screen {shown_final:,}, faas:stats {final:,} -> "
          f"{'OK' if done else 'DIFFERENT'}")
ok &= float(load) < 5.0
print(f"verdict: {'PASS' if ok else 'FAIL'} (under 5 % CPU and within one second's worth)")
print("--- screen under load ---")
print(under)
EOF
