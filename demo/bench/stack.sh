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

# load_tasks N CHUNK EVERY: writes N task records of function FID straight into Redis, CHUNK
# per Lua call, as the platform's scripts would leave them (hash, the all-tasks and function
# indexes; see protocol/src/keys.rs): one in EVERY is COMPLETED (with its run times and
# worker), the others QUEUED (a queue entry each: QUEUED has no index). Ids are made-up UUIDs,
# created_at 1 ms apart, newest first.
load_tasks() {
  local total=$1 chunk=$2 every=$3 first n now
  local loader='
local fid, first, n, now, every = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5])
for i = first, first + n - 1 do
  local id = string.format("%08x-0000-4000-8000-%012x", i, i)
  local key, at = "faas:task:" .. id, now - i
  redis.call("HSET", key, "function_id", fid, "function_name", "noop", "format", "source",
    "args", "{\"args\":[],\"kwargs\":{}}", "max_attempts", "3", "timeout_ms", "",
    "created_at", at)
  if i % every == 0 then
    redis.call("HSET", key, "status", "COMPLETED", "attempts", "1", "started_at", at + 1,
      "finished_at", at + 3, "worker", "w-bench-1")
  else
    redis.call("HSET", key, "status", "QUEUED", "attempts", "0")
    redis.call("XADD", "faas:queue", "*", "task", id)
  end
  redis.call("ZADD", "faas:tasks", at, id)
  redis.call("ZADD", "faas:tasks:fn:" .. fid, at, id)
end
return n'
  now=$(($(date +%s%N) / 1000000))
  log "loading $total tasks"
  for ((first = 0; first < total; first += chunk)); do
    n=$((total - first < chunk ? total - first : chunk))
    redis-cli -p "$RPORT" EVAL "$loader" 0 "$FID" "$first" "$n" "$now" "$every" >/dev/null
  done
  log "loaded: $(redis-cli -p "$RPORT" ZCARD faas:tasks) tasks, $(redis-cli -p "$RPORT" INFO memory | grep used_memory_human)"
}
