"""The synchronous Client: one request per call, for scripts and the original course's style.

Two kinds of functions:

* dill (any picklable Python callable, the original client's wire format):
  ``register(fn)``, ``run(function_id, *args, **kwargs)``, ``result(task_id, wait=60)``; the
  result is unpickled here, and a function that raised re-raises its own exception here with
  the remote traceback attached as a note.
* source (Python text plus an entrypoint; JSON arguments and results):
  ``register_source(source, entrypoint)``, ``run_json(function_id, args, kwargs)``,
  ``result_json(task_id, wait=60)``; a failure raises ``TaskFailed`` with the remote type,
  message and traceback.

``run`` takes the function's own arguments only (``function_id=`` as a keyword goes to the
function): the task's ``timeout_ms`` and ``max_attempts`` are the client's, set in the
constructor or per call with ``client.options(timeout_ms=..., max_attempts=...).run(...)``.
"""

from __future__ import annotations

import base64
import codecs
import copy
import pickle
import time
from typing import Any, Callable, Optional

import dill

from ._http import Http, gateway_token, gateway_url
from .errors import FaasError, TaskFailed, TaskLost, TaskNotFinished, task_failure

# One long poll of the gateway lasts at most this long before it is renewed (seconds).
_POLL_CHUNK = 30.0
TERMINAL = ("COMPLETED", "FAILED")


def serialize(obj: Any) -> str:
    """The original clients' encoding: MIME base64 of a dill pickle."""
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(s: str) -> Any:
    return dill.loads(codecs.decode(s.encode(), "base64"))


_PLAIN = frozenset((int, float, complex, str, bytes, bool, type(None)))


def _plain(obj: Any, depth: int = 0) -> bool:
    """Whether ``obj`` holds only builtin values, which the standard pickle writes exactly as
    dill does (same protocol, no functions or classes to send by value). Scalars inside a
    container are checked inline, without a call each: this runs once per task."""
    t = type(obj)
    if t in _PLAIN:
        return True
    if depth > 16:
        return False
    if t is tuple or t is list or t is set or t is frozenset:
        for x in obj:
            if type(x) not in _PLAIN and not _plain(x, depth + 1):
                return False
        return True
    if t is dict:
        for k, v in obj.items():
            if type(k) not in _PLAIN or (type(v) not in _PLAIN and not _plain(v, depth + 1)):
                return False
        return True
    return False


def dumps_b64(obj: Any) -> str:
    """base64 of the dill pickle of ``obj``; plain data goes through the standard pickle, which
    gives the same bytes some 100 times faster."""
    blob = pickle.dumps(obj, dill.settings["protocol"]) if _plain(obj) else dill.dumps(obj)
    return base64.b64encode(blob).decode()


def loads_b64(s: str) -> Any:
    """The value of a base64 dill pickle: the standard unpickler first (it reads dill's output
    unless dill's own class lookups are needed), dill's otherwise."""
    blob = base64.b64decode(s)
    try:
        return pickle.loads(blob)
    except Exception:
        return dill.loads(blob)


def execution(function_id: str, payload: str, timeout_ms: Optional[int], max_attempts: Optional[int]) -> dict[str, Any]:
    """An ``/execute_function`` body for a dill function."""
    body: dict[str, Any] = {"function_id": function_id, "payload": payload}
    if timeout_ms is not None:
        body["timeout_ms"] = int(timeout_ms)
    if max_attempts is not None:
        body["max_attempts"] = int(max_attempts)
    return body


def dill_outcome(reply: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, value)`` for a completed dill task, ``(False, exception)`` for a failed one: the
    function's own exception with the remote traceback as a note when it unpickles here, a
    TaskFailed (TaskTimeout, TaskLost) otherwise."""
    task_id = str(reply.get("task_id", "?"))
    if reply["status"] == "COMPLETED":
        return True, loads_b64(reply["result"])
    err = reply.get("error") or {}
    if isinstance(reply.get("result"), str):
        try:
            exc = loads_b64(reply["result"])
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            tb = err.get("traceback") or ""
            if tb and hasattr(exc, "add_note"):
                exc.add_note(f"Remote traceback (task {task_id}):\n{tb.rstrip()}")
            return False, exc
    return False, task_failure(task_id, err)


def unknown_task(task_id: str) -> TaskLost:
    return TaskLost(task_id, "Unknown", f"the gateway does not know task {task_id} (never submitted, or its result expired)")


class Client:
    """A client of one gateway: ``url`` (default ``FAAS_GATEWAY_URL``, else
    http://127.0.0.1:8000), ``token`` (default ``FAAS_TOKEN``). ``timeout`` bounds each HTTP
    request beyond its own long-poll time (seconds); ``timeout_ms`` and ``max_attempts`` are the
    defaults of every task this client starts (None: the platform's)."""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 10.0,
        *,
        timeout_ms: Optional[int] = None,
        max_attempts: Optional[int] = None,
    ) -> None:
        self.url = gateway_url(url)
        self.token = gateway_token(token)
        self.timeout = timeout
        self.timeout_ms = timeout_ms
        self.max_attempts = max_attempts
        self._http = Http(self.url, self.token, timeout)

    @property
    def session(self) -> Any:
        """The underlying ``requests.Session``."""
        return self._http.session

    def options(self, *, timeout_ms: Optional[int] = None, max_attempts: Optional[int] = None) -> "Client":
        """A view of this client (same connection) whose tasks get these settings."""
        view = copy.copy(self)
        if timeout_ms is not None:
            view.timeout_ms = timeout_ms
        if max_attempts is not None:
            view.max_attempts = max_attempts
        return view

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dill functions -------------------------------------------------------------------

    def register(self, fn: Callable[..., Any], name: Optional[str] = None) -> str:
        """Registers a Python callable; returns its function id."""
        body = {"name": name or getattr(fn, "__name__", "function"), "payload": serialize(fn)}
        return str(self._post("/register_function", body)["function_id"])

    def run(self, function_id: str, /, *args: Any, **kwargs: Any) -> str:
        """Starts ``fn(*args, **kwargs)`` remotely; returns the task id. Every keyword goes to
        the function (``function_id=`` included)."""
        body = execution(function_id, dumps_b64((args, kwargs)), self.timeout_ms, self.max_attempts)
        return str(self._post("/execute_function", body)["task_id"])

    def result(self, task_id: str, wait: float = 60.0) -> Any:
        """The return value of a dill task, waiting up to ``wait`` seconds for it. Re-raises the
        function's own exception if it raised; raises TaskNotFinished if time runs out."""
        ok, value = dill_outcome(self._wait(task_id, wait))
        if ok:
            return value
        raise value

    def call(self, function_id: str, /, *args: Any, **kwargs: Any) -> Any:
        """``run`` then ``result`` (waiting up to 60 s)."""
        return self.result(self.run(function_id, *args, **kwargs))

    # -- source functions -----------------------------------------------------------------

    def register_source(self, source: str, entrypoint: str, name: Optional[str] = None) -> str:
        """Registers Python source text whose ``entrypoint`` is called; returns its id."""
        body = {"name": name or entrypoint, "source": source, "entrypoint": entrypoint}
        return str(self._post("/register_function", body)["function_id"])

    def run_json(
        self,
        function_id: str,
        args: Any = (),
        kwargs: Optional[dict[str, Any]] = None,
        timeout_ms: Optional[int] = None,
        max_attempts: Optional[int] = None,
    ) -> str:
        """Starts a source function with JSON arguments; returns the task id."""
        body: dict[str, Any] = {"function_id": function_id, "args": list(args), "kwargs": kwargs or {}}
        timeout_ms = timeout_ms if timeout_ms is not None else self.timeout_ms
        max_attempts = max_attempts if max_attempts is not None else self.max_attempts
        if timeout_ms is not None:
            body["timeout_ms"] = int(timeout_ms)
        if max_attempts is not None:
            body["max_attempts"] = int(max_attempts)
        return str(self._post("/execute_function", body)["task_id"])

    def result_json(self, task_id: str, wait: float = 60.0) -> Any:
        """The JSON result of a source task; raises TaskFailed if it failed."""
        reply = self._wait(task_id, wait)
        if reply["status"] == "COMPLETED":
            return reply["result"]
        raise task_failure(task_id, reply.get("error"))

    # -- any task -------------------------------------------------------------------------

    def status(self, task_id: str) -> str:
        """QUEUED, RUNNING, COMPLETED or FAILED."""
        return str(self._get(f"/status/{task_id}")["status"])

    def task(self, task_id: str) -> dict[str, Any]:
        """The full task record: timings, attempts, worker, error and log."""
        return dict(self._get(f"/tasks/{task_id}"))

    def functions(self) -> list[dict[str, Any]]:
        return list(self._get("/functions"))

    # -- plumbing -------------------------------------------------------------------------

    def _wait(self, task_id: str, wait: Optional[float]) -> dict[str, Any]:
        """Long-polls until the task is terminal or ``wait`` seconds pass (the gateway wakes the
        request when the task finishes, so this does not poll in a loop)."""
        deadline = time.monotonic() + max(0.0, wait or 0.0)
        while True:
            left = deadline - time.monotonic()
            chunk_ms = int(max(0.0, min(left, _POLL_CHUNK)) * 1000)
            try:
                reply = self._get(f"/result/{task_id}?wait={chunk_ms}", extra=chunk_ms / 1000)
            except FaasError as e:
                if e.status == 404:
                    raise unknown_task(task_id) from e
                raise
            if reply["status"] in TERMINAL:
                return dict(reply)
            if time.monotonic() >= deadline:
                raise TaskNotFinished(task_id, reply["status"])

    def _get(self, path: str, extra: float = 0.0) -> Any:
        return self._http.request("GET", path, None, extra)

    def _post(self, path: str, body: Any) -> Any:
        return self._http.request("POST", path, body)


# Kept for callers of the original module, which raised TaskFailed from here.
__all__ = ["Client", "serialize", "deserialize", "TaskFailed"]
