# Sourced by the benchmark scripts here: a private redis-server and faas-gateway on free ports,
# stopped (with anything else in PIDS, newest first, and the tmux server SOCK if set) and their
# WORK directory removed on exit. The script sets NAME (its log prefix) and BIN before sourcing.
# After `start_redis`: RPORT, REDIS_PID; after `start_gateway`: GPORT, GW, GW_PID; after
# `register_noop`: FID.

WORK=$(mktemp -d "/tmp/faas-$NAME.XXXXXX")
PIDS=()
SOCK=${SOCK:-}

log() { printf '[%s %s] %s\n' "$NAME" "$(date +%T)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  local i p
  [[ -n $SOCK ]] && { tmux -L "$SOCK" kill-server 2>/dev/null || true; }
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

start_redis() {
  RPORT=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done
}

start_gateway() {
  GPORT=$(free_port)
  GW="http://127.0.0.1:$GPORT"
  "$BIN/faas-gateway" --listen "127.0.0.1:$GPORT" --redis "redis://127.0.0.1:$RPORT" \
    >"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  until curl -fs "$GW/healthz" >/dev/null; do sleep 0.1; done
}

register_noop() {
  FID=$(curl -fs "$GW/register_function" -H 'content-type: application/json' \
    -d '{"name":"noop","source":"def noop():\n    return None\n","entrypoint":"noop"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["function_id"])')
}
