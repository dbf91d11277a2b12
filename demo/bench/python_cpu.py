"""Where the CPU of the Python SDK's tasks goes: per task of an `Executor.map` of N no-op tasks
and per `submit().result()` round trip, the CPU seconds of this client, the gateway, Redis,
the dispatcher and its Python children (from /proc), and the client's HTTP request count.
CPU per unit is far less sensitive to a busy machine than tasks/s, so it compares two versions
of the SDK when wall-clock numbers cannot (put the other version first on PYTHONPATH).

    .venv/bin/python demo/bench/python_cpu.py [--tasks 3000] [--rt 200] [--reps 3] [--cprofile FILE]
"""
import os, sys, time, statistics, argparse
from pathlib import Path
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "demo" / "python" / "tests"))
from faas_stack import Stack
import faas_client as faas
from faas_client import _http

ap = argparse.ArgumentParser()
ap.add_argument("--tasks", type=int, default=3000)
ap.add_argument("--rt", type=int, default=200)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--bin", default=str(REPO / "target" / "release"))
ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"), help="the children's Python")
ap.add_argument("--cprofile", default="")
ap.add_argument("--commandstats", action="store_true", help="also print Redis's per-command calls and µs per task")
args = ap.parse_args()

def noop(): return None
def noop1(_): return None

TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / TICK  # utime stime cutime cstime
    except FileNotFoundError:
        return 0.0
def tree(pid):
    out = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(pid):
                    out += tree(int(p))
            except Exception:
                pass
    return out
def snap(stack):
    kids = sum(cpu(p) for p in tree(stack.dispatcher.popen.pid)[1:])
    t = os.times()
    return dict(client=t.user + t.system, gateway=cpu(stack.gateway.popen.pid), redis=cpu(stack.redis.popen.pid),
                dispatcher=cpu(stack.dispatcher.popen.pid), children=kids)

def commandstats(stack):
    """{command: (calls, usec)} from INFO commandstats (redis-cli, as study.sh reads it)."""
    import subprocess
    info = subprocess.run(["redis-cli", "-s", str(stack.redis_socket), "INFO", "commandstats"],
                          capture_output=True, text=True, check=True).stdout
    out = {}
    for line in info.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[8:].split(":", 1)
            kv = dict(x.split("=") for x in rest.split(","))
            out[name] = (int(kv["calls"]), int(kv["usec"]))
    return out
def print_commandstats(before, after, n):
    rows = []
    for k, (calls, usec) in after.items():
        c0, u0 = before.get(k, (0, 0))
        if calls > c0:
            rows.append((usec - u0, k, calls - c0))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"  redis commands: {sum(r[2] for r in rows)/n:.2f}/task, {total/n:.0f} us/task inside commands: " +
          ", ".join(f"{k} {c/n:.2f}x{u/max(c,1):.1f}us" for u, k, c in rows[:12]), flush=True)

counts = {"n": 0}
orig = _http.FastHttp.request
def counting(self, *a, **k):
    counts["n"] += 1
    return orig(self, *a, **k)
_http.FastHttp.request = counting

with Stack(workers=2, bin_dir=args.bin, python=args.python) as stack:
    with faas.Executor(stack.url) as ex:
        list(ex.map(noop1, range(500))); ex.submit(noop).result()
        for r in range(args.reps):
            if args.commandstats: cs = commandstats(stack)
            a = snap(stack); counts["n"] = 0; t0 = time.perf_counter()
            if args.cprofile and r == args.reps - 1:
                import cProfile; cProfile.runctx("list(ex.map(noop1, range(args.tasks)))", globals(), locals(), args.cprofile)
            else:
                list(ex.map(noop1, range(args.tasks)))
            dt = time.perf_counter() - t0; b = snap(stack)
            per = {k: (b[k] - a[k]) / args.tasks * 1e6 for k in a}
            print(f"map: {args.tasks/dt:,.0f}/s, {counts['n']} requests; CPU us/task: " + ", ".join(f"{k} {v:.0f}" for k, v in per.items()), flush=True)
            if args.commandstats: print_commandstats(cs, commandstats(stack), args.tasks)
        for r in range(args.reps):
            a = snap(stack); counts["n"] = 0
            ts = []
            for _ in range(args.rt):
                t0 = time.perf_counter(); ex.submit(noop).result(); ts.append(time.perf_counter() - t0)
            b = snap(stack)
            per = {k: (b[k] - a[k]) / args.rt * 1e6 for k in a}
            print(f"rt: p50 {statistics.median(ts)*1e3:.2f} ms, {counts['n']} requests; CPU us/rt: " + ", ".join(f"{k} {v:.0f}" for k, v in per.items()), flush=True)
