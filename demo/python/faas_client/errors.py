"""The exceptions of faas_client: every failure the SDK reports is a FaasError."""

from __future__ import annotations

from typing import Any, Optional


class FaasError(Exception):
    """Base class: the gateway refused a request, could not be reached, or a task failed."""

    status: Any

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message if status is None else f"{message} (HTTP {status})")
        self.message = message
        self.status = status


class GatewayUnreachable(FaasError):
    """The gateway could not be reached (refused, reset, timed out) for longer than allowed.
    ``not_sent`` is true when the request certainly never reached it (connection refused)."""

    not_sent = False


class GatewayError(FaasError):
    """The gateway answered 4xx or 5xx; ``message`` is its ``{"error"}`` text, ``status`` the
    HTTP status (400 bad input, 401 token, 404 unknown id, 413 too large, 503 Redis down)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status)


class TaskFailed(FaasError):
    """A task failed and its exception cannot be re-raised as itself: a source function, an
    exception that does not unpickle here, or a platform cause (``kind``: Timeout, WorkerLost,
    BadArguments, ...). ``traceback`` is the remote traceback text when there is one."""

    def __init__(self, task_id: str, kind: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{kind}: {message}")
        self.task_id = task_id
        self.kind = kind
        self.message = message
        self.traceback = traceback


class TaskTimeout(TaskFailed):
    """The task ran longer than its ``timeout_ms`` and was killed on the worker."""


class TaskLost(TaskFailed):
    """The task is gone: its worker was lost on every attempt (``kind`` WorkerLost), or the
    gateway no longer knows the id (``kind`` Unknown: never submitted, or its result expired)."""


class TaskNotFinished(FaasError, TimeoutError):
    """The task was still queued or running when the wait ran out (also a TimeoutError)."""

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(f"task {task_id} is still {status}")
        self.task_id = task_id
        # The task's status (QUEUED or RUNNING), as the original client's attribute had it.
        self.status = status


def task_failure(task_id: str, error: Optional[dict[str, Any]]) -> TaskFailed:
    """The TaskFailed subclass for a reply's ``error`` object."""
    err = error or {}
    kind = str(err.get("type", "Error"))
    cls = {"Timeout": TaskTimeout, "WorkerLost": TaskLost}.get(kind, TaskFailed)
    return cls(task_id, kind, str(err.get("message", "the task failed")), str(err.get("traceback", "")))
