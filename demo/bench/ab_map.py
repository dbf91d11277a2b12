"""A/B of two builds on the Python SDK's `Executor.map`: stacks of each build in turn, and per
no-op task the CPU and the context switches of Redis, the gateway, the dispatcher and its
Python children (from /proc). Tasks/s swings with this machine's minute; CPU and wake-ups per
task say what changed. With `--round-trips N`, each stack then also times N sequential
`submit(noop).result()` round trips (p50) and counts the same per round trip. Each argument is
one stack, in order: `DIR[:HOLD_AHEAD[:SANDBOX]]`, DIR holding faas-gateway and faas-dispatcher.

    .venv/bin/python demo/bench/ab_map.py /tmp/relA /tmp/relB /tmp/relA /tmp/relB
    .venv/bin/python demo/bench/ab_map.py target/release:2 target/release:8 [--tasks 6000]
    .venv/bin/python demo/bench/ab_map.py /tmp/relA /tmp/relB --tasks 3000 --round-trips 1000
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "demo" / "python" / "tests"))
from faas_stack import Stack  # noqa: E402

import faas_client as faas  # noqa: E402


def noop1(_):
    return None


def noop():
    return None


def tree(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(p))
    out, i = [pid], 0
    while i < len(out):
        out += kids.get(out[i], [])
        i += 1
    return out


def usage(pids: list[int]) -> dict[str, float]:
    """Voluntary and involuntary context switches and CPU seconds, summed."""
    total = {"vol": 0.0, "invol": 0.0, "cpu": 0.0}
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                key, _, value = line.partition(":")
                if key == "voluntary_ctxt_switches":
                    total["vol"] += int(value)
                elif key == "nonvoluntary_ctxt_switches":
                    total["invol"] += int(value)
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total["cpu"] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def per(parts: dict[str, list[int]], before: dict[str, dict[str, float]], n: int) -> str:
    cells = []
    for k, pids in parts.items():
        after = usage(pids)
        d = {m: (after[m] - before[k][m]) / n for m in ("vol", "invol", "cpu")}
        cells.append(f"{k} {d['cpu'] * 1e6:.0f} us, {d['vol']:.2f}+{d['invol']:.2f} cs")
    return "; ".join(cells)


def one(spec: str, tasks: int, round_trips: int) -> None:
    bin_dir, _, rest = spec.partition(":")
    hold, _, sandbox = rest.partition(":")
    for name, value in (("FAAS_HOLD_AHEAD", hold), ("FAAS_SANDBOX", sandbox)):
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    with Stack(workers=2, bin_dir=bin_dir, python=str(REPO / ".venv" / "bin" / "python")) as st:
        with faas.Executor(st.url) as ex:
            list(ex.map(noop1, range(1000)))  # warm: children started, function cached
            children = [p for p in tree(st.dispatcher.popen.pid)[1:]
                        if b"FaaS executor child" in open(f"/proc/{p}/cmdline", "rb").read()]
            parts = {"redis": [st.redis.popen.pid], "gateway": [st.gateway.popen.pid],
                     "dispatcher": [st.dispatcher.popen.pid], "children": children}
            before = {k: usage(v) for k, v in parts.items()}
            started = time.perf_counter()
            list(ex.map(noop1, range(tasks)))
            rate = tasks / (time.perf_counter() - started)
            print(f"{spec}: {rate:,.0f} tasks/s; per task: {per(parts, before, tasks)}", flush=True)
            if round_trips:
                for _ in range(100):
                    ex.submit(noop).result()
                before = {k: usage(v) for k, v in parts.items()}
                times = []
                for _ in range(round_trips):
                    t = time.perf_counter()
                    ex.submit(noop).result()
                    times.append(time.perf_counter() - t)
                p50 = statistics.median(times) * 1e3
                print(f"{spec}: round trip p50 {p50:.3f} ms; per round trip: {per(parts, before, round_trips)}",
                      flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stacks", nargs="+", help="DIR[:HOLD_AHEAD[:SANDBOX]], one stack each, in order")
    ap.add_argument("--tasks", type=int, default=6000)
    ap.add_argument("--round-trips", type=int, default=0, help="sequential round trips per stack (0: none)")
    args = ap.parse_args()
    for spec in args.stacks:
        one(spec, args.tasks, args.round_trips)


main()
