#!/usr/bin/env python3
"""Many `/events` subscribers on one gateway under `faas bench` load: gateway RSS and lag.

Opens N Server-Sent Events streams to GET /events (spread over a few client processes, plain
asyncio sockets, no dependencies), runs `faas bench` against the same gateway, samples the
gateway's RSS from /proc while it runs, and reports per-subscriber lag: receive time minus the
event's `at` (the Unix ms the platform stamped it with, same machine clock). Every subscriber
must see every event of the run: the count each one received is checked too.

Usage (a platform running, e.g. `faas up` or ./demo/up.sh):
  demo/bench/events_fanout.py --gateway http://127.0.0.1:8000 --gateway-pid PID \
      --subscribers 1000 -- --tasks 2000 -c 8
Arguments after `--` go to `faas bench`. The lag measured includes the clients' own delay in
reading (they share the machine), so it is an upper bound of the gateway's.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def subscriber(host, port, path, token, stats, ready, stop):
    reader, writer = await asyncio.open_connection(host, port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{auth}\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise SystemExit(f"GET {path}: {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    ready()
    # Read in large blocks and find each event's `"at":` without parsing lines or JSON (the
    # chunked encoding's size lines interleave; an event is never split across chunks, but a
    # read may end inside one, so the tail is kept).
    tail = b""
    while not stop.is_set():
        block = await reader.read(1 << 16)
        if not block:
            break
        now = time.time() * 1000
        buf = tail + block
        pos = 0
        while True:
            i = buf.find(b'"at":', pos)
            if i < 0:
                break
            j = i + 5
            k = j
            while k < len(buf) and 48 <= buf[k] <= 57:
                k += 1
            if k == len(buf):
                break
            stats.append(now - int(buf[j:k]))
            pos = k
        tail = buf[pos:][-64:] if pos < len(buf) else b""
        if pos == 0 and len(buf) > 64:
            tail = buf[-64:]
    writer.close()


def client_proc(args, n, ready_q, result_q, stop_ev):
    u = urlparse(args.gateway)
    host, port = u.hostname, u.port or 80
    path = "/events" + (f"?{args.query}" if args.query else "")

    async def main():
        stop = asyncio.Event()
        lags = [[] for _ in range(n)]
        readies = [0]

        def ready():
            readies[0] += 1
            if readies[0] == n:
                ready_q.put(n)

        tasks = [
            asyncio.create_task(subscriber(host, port, path, args.token, lags[i], ready, stop))
            for i in range(n)
        ]
        while not stop_ev.is_set():
            await asyncio.sleep(0.1)
        # Let the last events arrive.
        await asyncio.sleep(args.drain_s)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        result_q.put([(len(l), sorted(l)) for l in lags])

    asyncio.run(main())


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p / 100))]


def main():
    argv = sys.argv[1:]
    bench_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, bench_args = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gateway", default=os.environ.get("FAAS_GATEWAY_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--token", default=os.environ.get("FAAS_TOKEN"))
    ap.add_argument("--gateway-pid", type=int, required=True)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--query", default="", help="filters, e.g. types=task")
    ap.add_argument("--faas", default=shutil.which("faas") or "target/release/faas")
    ap.add_argument("--drain-s", type=float, default=2.0)
    args = ap.parse_args(argv)

    ready_q, result_q = mp.Queue(), mp.Queue()
    stop_ev = mp.Event()
    per = [args.subscribers // args.procs + (i < args.subscribers % args.procs) for i in range(args.procs)]
    procs = [mp.Process(target=client_proc, args=(args, n, ready_q, result_q, stop_ev)) for n in per if n]
    rss_idle = rss_mib(args.gateway_pid)
    for p in procs:
        p.start()
    for _ in procs:
        ready_q.get(timeout=120)
    rss_connected = rss_mib(args.gateway_pid)
    peak = [rss_connected]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(args.gateway_pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cmd = [args.faas, "--gateway", args.gateway, "bench", *bench_args]
    t0 = time.time()
    bench = subprocess.run(cmd, capture_output=True, text=True)
    bench_s = time.time() - t0
    stop_ev.set()
    results = []
    for _ in procs:
        results.extend(result_q.get(timeout=300))
    for p in procs:
        p.join()
    done.set()
    sampler.join()
    if bench.returncode != 0:
        print(bench.stdout, bench.stderr, file=sys.stderr)
        raise SystemExit(f"faas bench failed ({bench.returncode})")
    counts = [c for c, _ in results]
    all_lags = sorted(x for _, l in results for x in l)
    worst_p99 = max(pct(l, 99) for _, l in results if l) if any(l for _, l in results) else float("nan")
    report = {
        "subscribers": args.subscribers,
        "query": args.query,
        "bench": " ".join(bench_args),
        "bench_seconds": round(bench_s, 1),
        "events_per_subscriber_min": min(counts),
        "events_per_subscriber_max": max(counts),
        "gateway_rss_mib": {
            "idle": round(rss_idle, 1),
            "connected": round(rss_connected, 1),
            "peak": round(peak[0], 1),
        },
        "lag_ms": {
            "p50": round(pct(all_lags, 50), 1),
            "p99": round(pct(all_lags, 99), 1),
            "max": round(all_lags[-1], 1) if all_lags else None,
            "worst_subscriber_p99": round(worst_p99, 1),
        },
    }
    print(bench.stdout.strip())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
