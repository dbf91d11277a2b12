"""One executor child (daemons/src/executor/bootstrap.py, unsandboxed) driven over its pipes
with no-op dill tasks, with 1, 2 and 8 requests in flight: the child's CPU per task shows what
being woken for every task costs it, against the work itself.

    .venv/bin/python demo/bench/child_pipe.py [--tasks 20000]
"""
import argparse
import base64
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import dill

REPO = Path(__file__).resolve().parents[2]


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20000)
    args = ap.parse_args()
    source = (REPO / "daemons" / "src" / "executor" / "bootstrap.py").read_text()
    child = subprocess.Popen([sys.executable, "-c", source, "{}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None

    def read() -> dict:
        (n,) = struct.unpack(">I", child.stdout.read(4))
        return json.loads(child.stdout.read(n))

    def write(obj: dict) -> None:
        data = json.dumps(obj).encode()
        child.stdin.write(struct.pack(">I", len(data)) + data)
        child.stdin.flush()

    read()  # ready
    body = base64.b64encode(dill.dumps(lambda x: None)).decode()
    call = {"function_id": "f", "format": "dill", "args": base64.b64encode(dill.dumps(((5,), {}))).decode()}
    write(dict(call, body=body))
    assert read()["ok"]
    for depth in (1, 2, 8):
        before, started = cpu_seconds(child.pid), time.perf_counter()
        for _ in range(depth - 1):
            write(call)
        for _ in range(args.tasks):
            write(call)
            read()
        for _ in range(depth - 1):
            read()
        wall = time.perf_counter() - started
        used = cpu_seconds(child.pid) - before
        print(f"{depth} in flight: {wall / args.tasks * 1e6:.0f} us/task wall, child CPU {used / args.tasks * 1e6:.0f} us/task")
    child.stdin.close()
    child.wait()


main()
