"""faas_client: the Python SDK of the FaaS platform.

* ``Client``: one request per call (``register``, ``run``, ``result``; ``register_source``,
  ``run_json``, ``result_json``), and the module-level helpers below that use a default client.
* ``Executor``: a ``concurrent.futures.Executor`` (``submit``, ``map``, ``shutdown``) whose
  results arrive over one batched long-poll, for thousands of tasks a second.
* ``AsyncClient``: the same for asyncio programs, with awaitable results.

``FAAS_GATEWAY_URL`` (default http://127.0.0.1:8000) and ``FAAS_TOKEN`` choose the gateway.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .aio import AsyncClient
from .client import Client, deserialize, serialize
from .errors import (
    FaasError,
    GatewayError,
    GatewayUnreachable,
    TaskFailed,
    TaskLost,
    TaskNotFinished,
    TaskTimeout,
)
from .executor import Executor

__all__ = [
    "AsyncClient",
    "Client",
    "Executor",
    "FaasError",
    "GatewayError",
    "GatewayUnreachable",
    "TaskFailed",
    "TaskLost",
    "TaskNotFinished",
    "TaskTimeout",
    "default_client",
    "deserialize",
    "register",
    "register_source",
    "result",
    "result_json",
    "run",
    "run_json",
    "serialize",
    "status",
]

__version__ = "0.2.0"

_default: Optional[Client] = None


def default_client() -> Client:
    """The client the module-level functions use (FAAS_GATEWAY_URL, FAAS_TOKEN)."""
    global _default
    if _default is None:
        _default = Client()
    return _default


def register(fn: Callable[..., Any], name: Optional[str] = None) -> str:
    return default_client().register(fn, name)


def run(function_id: str, /, *args: Any, **kwargs: Any) -> str:
    return default_client().run(function_id, *args, **kwargs)


def result(task_id: str, wait: float = 60.0) -> Any:
    return default_client().result(task_id, wait)


def register_source(source: str, entrypoint: str, name: Optional[str] = None) -> str:
    return default_client().register_source(source, entrypoint, name)


def run_json(function_id: str, args: Any = (), kwargs: Optional[dict[str, Any]] = None,
             timeout_ms: Optional[int] = None, max_attempts: Optional[int] = None) -> str:
    return default_client().run_json(function_id, args, kwargs, timeout_ms, max_attempts)


def result_json(task_id: str, wait: float = 60.0) -> Any:
    return default_client().result_json(task_id, wait)


def status(task_id: str) -> str:
    return default_client().status(task_id)
