"""Python clients side by side: this platform's SDK, Celery 5 (Redis) and Ray, in one run.

For each client, from one Python process: N no-op tasks submitted and awaited (tasks/s), then
M sequential round trips (submit one no-op, wait for its result; p50 and p90), each measured
R times (`--reps`, default 5): a one-second run on a shared 2-core machine varies by 10-20 %,
so the table gives the median of the R throughputs with their range, and the round trip's
percentiles over all R x M trips. Each system gets 2 worker processes and runs alone (the
previous one is stopped first).

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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "demo" / "python" / "tests"))  # faas_stack: the private stack

from faas_stack import Daemon, Stack, free_port, wait_until  # noqa: E402


def noop():
    return None


def noop1(_):
    return None


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


REPS = 5  # set from --reps


def throughput(tasks: int, run) -> list[float]:
    """tasks/s of REPS runs of `run` (which submits and awaits `tasks` tasks)."""
    return [tasks / timed(run) for _ in range(REPS)]


def round_trips(one, count: int) -> dict[str, float]:
    for _ in range(20):  # warm-up
        one()
    times = sorted(timed(one) for _ in range(count * REPS))
    return {
        "p50_ms": statistics.median(times) * 1e3,
        "p90_ms": times[int(len(times) * 0.9)] * 1e3,
    }


def row(name: str, tasks: int, rates: list[float], latency: dict[str, float] | None) -> dict[str, object]:
    result: dict[str, object] = {"client": name, "tasks": tasks, "tasks_per_s": statistics.median(rates),
                                 "runs_tasks_per_s": [round(r) for r in rates]}
    if latency:
        result.update(latency)
    print(f"  {name}: {result['tasks_per_s']:,.0f} tasks/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
          + (f", round trip p50 {latency['p50_ms']:.2f} ms" if latency else ""), flush=True)
    return result


# -- this platform ------------------------------------------------------------------------

def bench_faas(args) -> list[dict[str, object]]:
    import faas_client as faas

    rows = []
    with Stack(workers=2, bin_dir=args.bin_dir, python=args.python,
               dispatcher_args=tuple(args.dispatcher_arg), gateway_args=tuple(args.gateway_arg)) as stack:
        with faas.Executor(stack.url) as ex:
            list(ex.map(noop1, range(500)))  # warm-up: registration, connections, children
            ex.submit(noop).result()
            rates = throughput(args.tasks, lambda: list(ex.map(noop1, range(args.tasks))))
            latency = round_trips(lambda: ex.submit(noop).result(), args.round_trips)
            rows.append(row("faas_client Executor.map / submit().result()", args.tasks, rates, latency))

            def submit_all():
                futures = [ex.submit(noop) for _ in range(args.tasks)]
                for f in futures:
                    f.result()

            rows.append(row("faas_client Executor.submit x N, then result()", args.tasks,
                            throughput(args.tasks, submit_all), None))

        # The one-request-per-call Client from 8 threads (what the original clients do).
        clients = [faas.Client(stack.url) for _ in range(8)]
        fid = clients[0].register(noop)

        def per_thread(i: int) -> None:
            c = clients[i]
            for _ in range(args.tasks // 8):
                c.result(c.run(fid))

        with ThreadPoolExecutor(8) as pool:
            rates = throughput(args.tasks // 8 * 8, lambda: list(pool.map(per_thread, range(8))))
        latency = round_trips(lambda: clients[0].result(clients[0].run(fid)), args.round_trips)
        rows.append(row("faas_client Client.run + result, 8 threads", args.tasks // 8 * 8, rates, latency))
    return rows


# -- Celery 5 with Redis ------------------------------------------------------------------

CELERY_APP = """
from celery import Celery
app = Celery("bench", broker="{url}", backend="{url}")
app.conf.update(worker_prefetch_multiplier=4, task_acks_late=False, result_expires=600,
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)

@app.task
def noop():
    return None


def noop1(_):
    return None
"""


def bench_celery(args) -> list[dict[str, object]]:
    workdir = Path(tempfile.mkdtemp(prefix="faas-bench-celery-"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    (workdir / "bench_celery_app.py").write_text(textwrap.dedent(CELERY_APP.format(url=url)))
    env = dict(os.environ, PYTHONPATH=str(workdir))
    redis = Daemon("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], workdir, env)
    worker = None
    try:
        wait_until("redis", lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                                   capture_output=True).stdout.strip() == b"PONG", proc=redis)
        worker = Daemon("celery", [sys.executable, "-m", "celery", "-A", "bench_celery_app", "worker",
                                   "--concurrency", "2", "--pool", "prefork", "--loglevel", "WARNING"],
                        workdir, env)
        sys.path.insert(0, str(workdir))
        from bench_celery_app import noop as celery_noop  # type: ignore[import-not-found]

        celery_noop.delay().get(timeout=120)  # the worker is up
        for r in [celery_noop.delay() for _ in range(200)]:
            r.get(timeout=120)

        def all_tasks():
            results = [celery_noop.delay() for _ in range(args.tasks)]
            for r in results:
                r.get(timeout=300)

        rates = throughput(args.tasks, all_tasks)
        latency = round_trips(lambda: celery_noop.delay().get(timeout=60), args.round_trips)
        return [row("Celery 5 (Redis), delay + get", args.tasks, rates, latency)]
    finally:
        for d in (worker, redis):
            if d is not None:
                d.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


# -- Ray ----------------------------------------------------------------------------------

def bench_ray(args) -> list[dict[str, object]]:
    import shutil

    import ray

    # Ray's sessions and logs go to a directory of this run, removed afterwards (not /tmp/ray).
    temp_dir = tempfile.mkdtemp(prefix="faas-bench-ray-")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False, _temp_dir=temp_dir)
    try:
        @ray.remote
        def ray_noop():
            return None

        ray.get([ray_noop.remote() for _ in range(500)])  # warm-up: the workers start
        rates = throughput(args.tasks, lambda: ray.get([ray_noop.remote() for _ in range(args.tasks)]))
        latency = round_trips(lambda: ray.get(ray_noop.remote()), args.round_trips)
        return [row(f"Ray {ray.__version__} (num_cpus=2), remote + get", args.tasks, rates, latency)]
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


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
    global REPS
    REPS = args.reps

    rows: list[dict[str, object]] = []
    for name in args.only.split(","):
        print(f"{name}:", flush=True)
        rows.extend({"faas": bench_faas, "celery": bench_celery, "ray": bench_ray}[name.strip()](args))

    print(f"\n{args.tasks:,} no-op tasks from one Python process ({REPS} runs: median, range), then "
          f"{REPS} x {args.round_trips} sequential round trips:\n")
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
