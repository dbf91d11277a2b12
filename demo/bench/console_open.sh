#!/usr/bin/env bash
# faas-console against $TASKS finished tasks (issue #13: opens in under 1 s, idle CPU under 1 %).
#
# Starts a private redis-server and faas-gateway (no dispatcher), fills Redis with $TASKS
# COMPLETED task records and their listing indexes (`load_tasks` in stack.sh), starts the
# console in a private tmux server on the Tasks screen and times until the first page of the
# history is on screen, then reads the console's CPU time (/proc) over 15 s idle on each of the
# five screens, and its RSS. Everything it started is stopped on exit.
#
# Usage: demo/bench/console_open.sh   (build first: cargo build --workspace --bins)
# Knobs (environment): TASKS (1000000) CHUNK (20000) BIN (target/debug) CONSOLE WAITFOR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/debug}
NAME=console-open
SOCK="faas-console-open-$$"
. "$ROOT/demo/bench/stack.sh"
TASKS=${TASKS:-1000000}
CHUNK=${CHUNK:-20000}
start_redis
start_gateway
register_noop
load_tasks "$TASKS" "$CHUNK" 1
START=$(date +%s%N)
tmux -L "$SOCK" new-session -d -x 120 -y 40 "${CONSOLE:-$BIN/faas-console} --redis redis://127.0.0.1:$RPORT --gateway $GW"
tmux -L "$SOCK" send-keys 3
# WAITFOR: the text that says the first page is drawn (a console without history: "Tasks, newest").
for ((i = 0; ; i++)); do
  tmux -L "$SOCK" capture-pane -p | grep -q "${WAITFOR:-noop}" && break
  ((i < 3000)) || { log "nothing after 30 s:"; tmux -L "$SOCK" capture-pane -p; exit 1; }
  sleep 0.01
done
END=$(date +%s%N)
log "first page on screen after $(( (END - START) / 1000000 )) ms"
tmux -L "$SOCK" capture-pane -p | head -8
PANE=$(tmux -L "$SOCK" display-message -p '#{pane_pid}')
CPID=$PANE
if pgrep -P "$PANE" >/dev/null; then CPID=$(pgrep -P "$PANE"); fi
comm=$(cat /proc/$CPID/comm); log "console pid $CPID ($comm)"
TCK=$(getconf CLK_TCK)
for tab in 1 2 3 4 5; do
  tmux -L "$SOCK" send-keys $tab; sleep 1
  t0=$(awk '{print $14+$15}' /proc/$CPID/stat); sleep 15; t1=$(awk '{print $14+$15}' /proc/$CPID/stat)
  python3 -c "print(f'idle CPU over 15 s on screen $tab: {($t1-$t0)/$TCK/15*100:.2f} %')"
done
grep VmRSS /proc/$CPID/status
# Scrolling: PageDown to the end of the first page; the next page (200) comes in the background.
tmux -L "$SOCK" send-keys 3
for _ in $(seq 10); do tmux -L "$SOCK" send-keys PageDown; done
START=$(date +%s%N)
for ((i = 0; ; i++)); do
  tmux -L "$SOCK" capture-pane -p | grep -q "· 300 shown" && break
  ((i < 3000)) || { log "no second page after 30 s:"; tmux -L "$SOCK" capture-pane -p; exit 1; }
  sleep 0.01
done
log "second page listed $(( ($(date +%s%N) - START) / 1000000 )) ms after the last PageDown"
