"""A private FaaS stack for Python tests and benchmarks: redis-server on a unix socket (as
``faas up`` runs it), faas-gateway on a free loopback port and a local-mode faas-dispatcher, in
a temporary directory.

Stop it with ``stop()`` (or use it as a context manager): every process it started is stopped
by its pid (SIGTERM, then SIGKILL after a grace period) and the directory is removed, whatever
happened before. Binaries come from ``FAAS_BIN_DIR`` (default: the repository's target/debug),
the Python children from ``FAAS_PYTHON`` (default: this interpreter).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[3]


# Ports handed out by free_port in this process: a port is free again once its probe closes, so
# two calls could return the same one before either is bound.
_GIVEN: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_until(what: str, check, timeout: float = 20.0, proc: Optional["Daemon"] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.02)
    tail = f"\n{proc.log_tail()}" if proc is not None else ""
    raise RuntimeError(f"{what} did not happen within {timeout} s{tail}")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (even by
    SIGKILL), so an interrupted test run leaves no daemons behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Daemon:
    """One child process, its output in ``<dir>/<name>.log``."""

    def __init__(self, name: str, argv: list[str], directory: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = directory / f"{name}.log"
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=directory, env=env,
                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    def __init__(
        self,
        workers: int = 2,
        bin_dir: Optional[str] = None,
        python: Optional[str] = None,
        gateway_args: tuple[str, ...] = (),
        dispatcher_args: tuple[str, ...] = (),
        pythonpath: Optional[str] = None,
    ) -> None:
        self.bin_dir = Path(bin_dir or os.environ.get("FAAS_BIN_DIR") or REPO / "target" / "debug").resolve()
        self.python = python or os.environ.get("FAAS_PYTHON") or sys.executable
        self.workers = workers
        self.gateway_args = list(gateway_args)
        self.dispatcher_args = list(dispatcher_args)
        self.dir = Path(tempfile.mkdtemp(prefix="faas-pytest-"))
        self.env = dict(os.environ)
        self.env.pop("FAAS_TOKEN", None)
        if pythonpath:
            self.env["PYTHONPATH"] = pythonpath
        self.redis: Optional[Daemon] = None
        self.gateway: Optional[Daemon] = None
        self.dispatcher: Optional[Daemon] = None
        self.redis_socket = self.dir / "redis.sock"
        self.gateway_port = free_port()
        self.url = f"http://127.0.0.1:{self.gateway_port}"

    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for binary in ("faas-gateway", "faas-dispatcher"):
            if not (self.bin_dir / binary).exists():
                raise RuntimeError(f"{self.bin_dir / binary} is missing: run `cargo build --workspace --bins`")
        self.redis = Daemon(
            "redis",
            ["redis-server", "--port", "0", "--unixsocket", str(self.redis_socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            self.dir, self.env,
        )
        wait_until("redis answering PING", self._redis_up, proc=self.redis)
        self.start_gateway()
        self.dispatcher = Daemon(
            "dispatcher",
            [str(self.bin_dir / "faas-dispatcher"), "-m", "local", "--procs", str(self.workers),
             "--python", self.python, "--redis", self.redis_url, *self.dispatcher_args],
            self.dir, self.env,
        )

    @property
    def redis_url(self) -> str:
        return f"unix://{self.redis_socket}"

    def start_gateway(self) -> None:
        self.gateway = Daemon(
            "gateway",
            [str(self.bin_dir / "faas-gateway"), "--listen", f"127.0.0.1:{self.gateway_port}",
             "--redis", self.redis_url, *self.gateway_args],
            self.dir, self.env,
        )
        wait_until("the gateway answering /healthz", self._gateway_up, proc=self.gateway)

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()

    def restart_gateway(self) -> None:
        self.stop_gateway()
        self.start_gateway()

    def stop(self) -> None:
        # Consumers of Redis first, Redis last; each by its own pid.
        for daemon in (self.dispatcher, self.gateway, self.redis):
            if daemon is not None:
                try:
                    daemon.stop()
                except Exception:  # keep stopping the others
                    pass
        if os.environ.get("FAAS_KEEP_STACK_DIR"):
            print(f"stack logs kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {d.name} ---\n{d.log_tail()}" for d in (self.redis, self.gateway, self.dispatcher) if d
        )

    def _redis_up(self) -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(self.redis_socket))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def _gateway_up(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
            return bool(r.status == 200)
