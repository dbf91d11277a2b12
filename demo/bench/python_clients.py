"""Python clients side by side: this platform's SDK, Celery 5 (Redis) and Ray, in one run.

For each client, from one Python process: N no-op tasks submitted and awaited (tasks/s), then
M sequential round trips (submit one no-op, wait for its result; p50 and p90). Each system
gets 2 worker processes. All three are started first and stay up; then R rounds (`--reps`,
default 5) each run every system's measurements once, in an order rotated every round. A
one-second run on a shared 2-core machine varies by 10-20 %, and the machine's speed drifts
over minutes: interleaved rounds expose every system to the same drift, so the ratios hold
where runs of one system after another did not. The table gives the median of the R
throughputs with their range, and the round trip's percentiles over all R x M trips. (The
idle systems stay up meanwhile; they use little CPU.)

Run it through demo/bench/python_clients.sh, which builds the release binaries and a venv of
its own with Celery and Ray (never the project's .venv). By hand:

    demo/bench/.venv-peers/bin/python demo/bench/python_clients.py \\
        --bin-dir target/release --python .venv/bin/python [--only faas,celery,ray]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "demo" / "python" / "tests"))  # faas_stack: the private stack

from faas_stack import Daemon, Stack, wait_until  # noqa: E402


def noop():
    return None


def noop1(_):
    return None


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# A measurement: (row name, tasks per run, run: submit and await them, one: one round trip
# or None). Each system's setup returns its measurements; main() runs them.
Measure = tuple[str, int, Callable[[], object], Optional[Callable[[], object]]]


# -- this platform ------------------------------------------------------------------------

def setup_faas(args, stack: ExitStack) -> list[Measure]:
    import faas_client as faas

    platform = stack.enter_context(Stack(workers=2, bin_dir=args.bin_dir, python=args.python,
                                         dispatcher_args=tuple(args.dispatcher_arg),
                                         gateway_args=tuple(args.gateway_arg)))
    ex = stack.enter_context(faas.Executor(platform.url))
    list(ex.map(noop1, range(500)))  # warm-up: registration, connections, children
    ex.submit(noop).result()

    def submit_all():
        futures = [ex.submit(noop) for _ in range(args.tasks)]
        for f in futures:
            f.result()

    # The one-request-per-call Client from 8 threads (what the original clients do).
    clients = [faas.Client(platform.url) for _ in range(8)]
    fid = clients[0].register(noop)
    pool = stack.enter_context(ThreadPoolExecutor(8))

    def per_thread(i: int) -> None:
        c = clients[i]
        for _ in range(args.tasks // 8):
            c.result(c.run(fid))

    return [
        ("faas_client Executor.map / submit().result()", args.tasks,
         lambda: list(ex.map(noop1, range(args.tasks))), lambda: ex.submit(noop).result()),
        ("faas_client Executor.submit x N, then result()", args.tasks, submit_all, None),
        ("faas_client Client.run + result, 8 threads", args.tasks // 8 * 8,
         lambda: list(pool.map(per_thread, range(8))), lambda: clients[0].result(clients[0].run(fid))),
    ]


# -- Celery 5 with Redis ------------------------------------------------------------------

CELERY_APP = """
from celery import Celery
app = Celery("bench", broker="{broker}", backend="{backend}")
app.conf.update(worker_prefetch_multiplier=4, task_acks_late=False, result_expires=600,
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)

@app.task
def noop():
    return None
"""


def setup_celery(args, stack: ExitStack) -> list[Measure]:
    import shutil

    workdir = Path(tempfile.mkdtemp(prefix="faas-bench-celery-"))
    stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    # Redis on a unix socket, as this platform's Stack runs its own.
    sock = workdir / "redis.sock"
    app = CELERY_APP.format(broker=f"redis+socket://{sock}", backend=f"redis+socket://{sock}")
    (workdir / "bench_celery_app.py").write_text(textwrap.dedent(app))
    env = dict(os.environ, PYTHONPATH=str(workdir))
    redis = Daemon("redis", ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], workdir, env)
    stack.callback(redis.stop)
    wait_until("redis", lambda: subprocess.run(["redis-cli", "-s", str(sock), "ping"],
                                               capture_output=True).stdout.strip() == b"PONG", proc=redis)
    worker = Daemon("celery", [sys.executable, "-m", "celery", "-A", "bench_celery_app", "worker",
                               "--concurrency", "2", "--pool", "prefork", "--loglevel", "WARNING"],
                    workdir, env)
    stack.callback(worker.stop)  # before Redis (callbacks run last in, first out)
    sys.path.insert(0, str(workdir))
    from bench_celery_app import noop as celery_noop  # type: ignore[import-not-found]

    celery_noop.delay().get(timeout=120)  # the worker is up
    for r in [celery_noop.delay() for _ in range(200)]:
        r.get(timeout=120)

    def all_tasks():
        results = [celery_noop.delay() for _ in range(args.tasks)]
        for r in results:
            r.get(timeout=300)

    return [("Celery 5 (Redis), delay + get", args.tasks, all_tasks,
             lambda: celery_noop.delay().get(timeout=60))]


# -- Ray ----------------------------------------------------------------------------------

def setup_ray(args, stack: ExitStack) -> list[Measure]:
    import shutil

    import ray

    # Ray's sessions and logs go to a directory of this run, removed afterwards (not /tmp/ray).
    temp_dir = tempfile.mkdtemp(prefix="faas-bench-ray-")
    stack.callback(shutil.rmtree, temp_dir, ignore_errors=True)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False, _temp_dir=temp_dir)
    stack.callback(ray.shutdown)

    @ray.remote
    def ray_noop():
        return None

    ray.get([ray_noop.remote() for _ in range(500)])  # warm-up: the workers start
    return [(f"Ray {ray.__version__} (num_cpus=2), remote + get", args.tasks,
             lambda: ray.get([ray_noop.remote() for _ in range(args.tasks)]),
             lambda: ray.get(ray_noop.remote()))]


SETUPS = {"faas": setup_faas, "celery": setup_celery, "ray": setup_ray}


def measure(systems: list[list[Measure]], reps: int, round_trips: int) -> list[dict[str, object]]:
    """Runs every measurement `reps` times, round by round: each round runs each system once
    (in an order rotated every round), so that a machine slower for a minute slows every
    system's runs alike rather than one system's."""
    rates: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    for measures in systems:  # round-trip warm-up
        for name, _, _, one in measures:
            if one is not None:
                for _ in range(20):
                    one()
    for rep in range(reps):
        shift = rep % len(systems)
        for measures in systems[shift:] + systems[:shift]:
            for name, tasks, run, one in measures:
                rates.setdefault(name, []).append(tasks / timed(run))
                if one is not None:
                    times.setdefault(name, []).extend(timed(one) for _ in range(round_trips))
        print(f"  round {rep + 1}/{reps}: " + "; ".join(f"{n}: {r[-1]:,.0f}/s" for n, r in rates.items()),
              flush=True)
    rows: list[dict[str, object]] = []
    for measures in systems:
        for name, tasks, _, _ in measures:
            row: dict[str, object] = {"client": name, "tasks": tasks, "tasks_per_s": statistics.median(rates[name]),
                                      "runs_tasks_per_s": [round(r) for r in rates[name]]}
            if name in times:
                t = sorted(times[name])
                row.update(p50_ms=statistics.median(t) * 1e3, p90_ms=t[int(len(t) * 0.9)] * 1e3)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--round-trips", type=int, default=200, help="round trips per rep")
    parser.add_argument("--reps", type=int, default=5, help="runs of each measurement (median reported)")
    parser.add_argument("--only", default="faas,celery,ray", help="comma-separated: faas, celery, ray")
    parser.add_argument("--bin-dir", default=str(REPO / "target" / "release"))
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"),
                        help="the Python of the platform's children (needs dill)")
    parser.add_argument("--gateway-arg", action="append", default=[], help="an extra faas-gateway flag")
    parser.add_argument("--dispatcher-arg", action="append", default=[], help="an extra faas-dispatcher flag")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    reps = args.reps

    with ExitStack() as stack:
        systems = []
        for name in args.only.split(","):
            print(f"starting {name}", flush=True)
            systems.append(SETUPS[name.strip()](args, stack))
        rows = measure(systems, reps, args.round_trips)

    print(f"\n{args.tasks:,} no-op tasks from one Python process ({reps} runs: median, range), then "
          f"{reps} x {args.round_trips} sequential round trips:\n")
    print("| client | tasks/s | range | round trip p50 | p90 |")
    print("|---|---|---|---|---|")
    for r in rows:
        p50 = f"{r['p50_ms']:.2f} ms" if "p50_ms" in r else "–"
        p90 = f"{r['p90_ms']:.2f} ms" if "p90_ms" in r else "–"
        runs = r["runs_tasks_per_s"]
        print(f"| {r['client']} | {r['tasks_per_s']:,.0f} | {min(runs):,}–{max(runs):,} | {p50} | {p90} |")
    ours = next((r for r in rows if "Executor.map" in str(r["client"])), None)
    for peer in (r for r in rows if str(r["client"]).startswith(("Celery", "Ray"))):
        if ours is not None:
            print(f"\nExecutor.map vs {str(peer['client']).split(' (')[0]}: {ours['tasks_per_s'] / peer['tasks_per_s']:.2f}x "
                  f"the tasks/s, round trip p50 {ours['p50_ms'] / peer['p50_ms']:.2f}x", end="")
    print()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
