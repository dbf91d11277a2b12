#!/usr/bin/env python3
"""Synthetic task events for console_events.sh: publishes on `faas:events` at a fixed rate.

Per task it does what the platform's scripts do, in one Lua call per batch: the task hash (the
fields the console reads back when a task finishes, kept 120 s), the QUEUED, RUNNING and
COMPLETED events with the exact JSON of `protocol::event::Event` (submit's `event_json`,
take_lib.lua, finish.lua with the small outcome a `None` result carries), the COMPLETED one on
`faas:finished` too, and the `faas:stats` counters `submitted` and `completed` (once per batch,
by the batch size: the values are what the console reads). No dependencies: it speaks RESP over
a plain socket, pipelining the batches due in each 50 ms step, so it keeps its rate with
little CPU of its own.

Usage: console_events.py PORT RATE SECONDS FUNCTION_ID   (tasks/s; prints one JSON line when done)
"""

import json
import socket
import sys
import time

SCRIPT = r"""
local first, n, now, fid = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
for i = first, first + n - 1 do
  local id = string.format('c0ffee00-0000-4000-8000-%012x', i)
  local key = 'faas:task:' .. id
  redis.call('HSET', key, 'function_id', fid, 'function_name', 'noop', 'status', 'COMPLETED',
    'worker', 'w-bench-1', 'attempts', '1', 'created_at', now, 'started_at', now,
    'finished_at', now)
  redis.call('EXPIRE', key, 120)
  redis.call('PUBLISH', 'faas:events', '{"type":"task","task_id":"' .. id ..
    '","function_id":"' .. fid .. '","status":"QUEUED","at":' .. now .. '}')
  redis.call('PUBLISH', 'faas:events', '{"type":"task","task_id":"' .. id ..
    '","status":"RUNNING","worker":"w-bench-1","at":' .. now .. '}')
  local done = '{"type":"task","task_id":"' .. id ..
    '","status":"COMPLETED","worker":"w-bench-1","at":' .. now .. ',"outcome":{"result":null}}'
  redis.call('PUBLISH', 'faas:events', done)
  redis.call('PUBLISH', 'faas:finished', done)
end
redis.call('HINCRBY', 'faas:stats', 'submitted', n)
return redis.call('HINCRBY', 'faas:stats', 'completed', n)
"""

STEP = 0.05  # seconds between sends
MAX_BATCH = 500  # tasks per Lua call: 2,000 PUBLISHes, a few ms of Redis at most


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data
        return rest

    def call(self, *args):
        self.sock.sendall(command(*args))
        return self.reply()


def main():
    port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    function_id = sys.argv[4]
    c = Conn(port)
    sha = c.call("SCRIPT", "LOAD", SCRIPT).decode()
    sent = 0
    start = time.monotonic()
    late = 0.0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(rate * elapsed) - sent
        calls = []
        while due > 0:
            n = min(due, MAX_BATCH)
            now_ms = int(time.time() * 1000)
            calls.append(command("EVALSHA", sha, 0, sent, n, now_ms, function_id))
            sent += n
            due -= n
        if calls:
            c.sock.sendall(b"".join(calls))
            for _ in calls:
                c.reply()
        # Sleep to the next step; a step that overran is caught up by the next batch.
        next_at = start + (int(elapsed / STEP) + 1) * STEP
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            late = max(late, -pause)
    took = time.monotonic() - start
    print(
        json.dumps(
            {
                "tasks": sent,
                "seconds": round(took, 2),
                "rate": round(sent / took),
                "messages": sent * 3,
                "worst_overrun_ms": round(late * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
