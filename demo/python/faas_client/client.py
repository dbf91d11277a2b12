"""faas_client: a small Python client of the FaaS gateway, in one file (needs requests and dill).

Two kinds of functions:

* dill (any picklable Python callable, the original client's wire format):
  ``register(fn)``, ``run(function_id, *args, **kwargs)``, ``result(task_id, wait=60)``;
  the result is unpickled here, and a function that raised re-raises its exception here.
* source (Python text plus an entrypoint; JSON arguments and results):
  ``register_source(source, entrypoint)``, ``run_json(function_id, args, kwargs)``,
  ``result_json(task_id, wait=60)``; a failure raises ``TaskFailed`` with the remote type,
  message and traceback.

The module-level functions use a default client configured from ``FAAS_GATEWAY_URL`` (default
http://127.0.0.1:8000) and ``FAAS_TOKEN``; make a ``Client(url, token)`` to talk to another one.
"""

import codecs
import os
import time

import dill
import requests

DEFAULT_URL = "http://127.0.0.1:8000"
# One long poll of the gateway lasts at most this long before it is renewed (seconds).
_POLL_CHUNK = 30.0


def serialize(obj):
    """The original clients' encoding: MIME base64 of a dill pickle."""
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(s):
    return dill.loads(codecs.decode(s.encode(), "base64"))


class FaasError(Exception):
    """The gateway refused a request (4xx/5xx) or could not be reached."""

    def __init__(self, message, status=None):
        super().__init__(message if status is None else f"{message} (HTTP {status})")
        self.status = status


class TaskFailed(Exception):
    """A task failed and its exception cannot be re-raised as itself (source functions, or a
    platform cause such as Timeout or WorkerLost)."""

    def __init__(self, task_id, kind, message, traceback=""):
        super().__init__(f"{kind}: {message}")
        self.task_id = task_id
        self.kind = kind
        self.message = message
        self.traceback = traceback


class TaskNotFinished(TimeoutError):
    """The task was still queued or running when the wait ran out."""

    def __init__(self, task_id, status):
        super().__init__(f"task {task_id} is still {status}")
        self.task_id = task_id
        self.status = status


class Client:
    def __init__(self, url=None, token=None, timeout=10.0):
        self.url = (url or os.environ.get("FAAS_GATEWAY_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else os.environ.get("FAAS_TOKEN")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        # Timeout of each request beyond its own long-poll time.
        self.timeout = timeout

    # -- dill functions -------------------------------------------------------------------

    def register(self, fn, name=None):
        """Registers a Python callable; returns its function id."""
        body = {"name": name or getattr(fn, "__name__", "function"), "payload": serialize(fn)}
        return self._post("/register_function", body)["function_id"]

    def run(self, function_id, *args, **kwargs):
        """Starts ``fn(*args, **kwargs)`` remotely; returns the task id."""
        body = {"function_id": function_id, "payload": serialize((args, kwargs))}
        return self._post("/execute_function", body)["task_id"]

    def result(self, task_id, wait=60.0):
        """The return value of a dill task, waiting up to ``wait`` seconds for it. Re-raises the
        function's own exception if it raised; raises TaskNotFinished if time runs out."""
        reply = self._wait(task_id, wait)
        if reply["status"] == "COMPLETED":
            return deserialize(reply["result"])
        if isinstance(reply.get("result"), str):
            exc = deserialize(reply["result"])
            if isinstance(exc, BaseException):
                raise exc
        raise self._failure(task_id, reply)

    # -- source functions -----------------------------------------------------------------

    def register_source(self, source, entrypoint, name=None):
        """Registers Python source text whose ``entrypoint`` is called; returns its id."""
        body = {"name": name or entrypoint, "source": source, "entrypoint": entrypoint}
        return self._post("/register_function", body)["function_id"]

    def run_json(self, function_id, args=(), kwargs=None, timeout_ms=None):
        """Starts a source function with JSON arguments; returns the task id."""
        body = {"function_id": function_id, "args": list(args), "kwargs": kwargs or {}}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        return self._post("/execute_function", body)["task_id"]

    def result_json(self, task_id, wait=60.0):
        """The JSON result of a source task; raises TaskFailed if it failed."""
        reply = self._wait(task_id, wait)
        if reply["status"] == "COMPLETED":
            return reply["result"]
        raise self._failure(task_id, reply)

    # -- any task -------------------------------------------------------------------------

    def status(self, task_id):
        """QUEUED, RUNNING, COMPLETED or FAILED."""
        return self._get(f"/status/{task_id}")["status"]

    def task(self, task_id):
        """The full task record: timings, attempts, worker, error and log."""
        return self._get(f"/tasks/{task_id}")

    def functions(self):
        return self._get("/functions")

    # -- plumbing -------------------------------------------------------------------------

    def _wait(self, task_id, wait):
        """Long-polls until the task is terminal or ``wait`` seconds pass (the gateway wakes the
        request when the task finishes, so this does not poll in a loop)."""
        deadline = time.monotonic() + max(0.0, wait or 0.0)
        while True:
            left = deadline - time.monotonic()
            chunk_ms = int(max(0.0, min(left, _POLL_CHUNK)) * 1000)
            reply = self._get(f"/result/{task_id}?wait={chunk_ms}", extra=chunk_ms / 1000)
            if reply["status"] in ("COMPLETED", "FAILED"):
                return reply
            if time.monotonic() >= deadline:
                raise TaskNotFinished(task_id, reply["status"])

    @staticmethod
    def _failure(task_id, reply):
        err = reply.get("error") or {}
        return TaskFailed(
            task_id,
            err.get("type", "Error"),
            err.get("message", "the task failed"),
            err.get("traceback", ""),
        )

    def _get(self, path, extra=0.0):
        return self._send("GET", path, None, extra)

    def _post(self, path, body):
        return self._send("POST", path, body, 0.0)

    def _send(self, method, path, body, extra):
        try:
            resp = self.session.request(
                method, self.url + path, json=body, timeout=self.timeout + extra
            )
        except requests.RequestException as e:
            raise FaasError(f"cannot reach the gateway at {self.url}: {e}") from e
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = resp.text
            raise FaasError(message, resp.status_code)
        return resp.json()


_default = None


def default_client():
    """The client the module-level functions use (FAAS_GATEWAY_URL, FAAS_TOKEN)."""
    global _default
    if _default is None:
        _default = Client()
    return _default


def register(fn, name=None):
    return default_client().register(fn, name)


def run(function_id, *args, **kwargs):
    return default_client().run(function_id, *args, **kwargs)


def result(task_id, wait=60.0):
    return default_client().result(task_id, wait)


def register_source(source, entrypoint, name=None):
    return default_client().register_source(source, entrypoint, name)


def run_json(function_id, args=(), kwargs=None, timeout_ms=None):
    return default_client().run_json(function_id, args, kwargs, timeout_ms)


def result_json(task_id, wait=60.0):
    return default_client().result_json(task_id, wait)


def status(task_id):
    return default_client().status(task_id)
