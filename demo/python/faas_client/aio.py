"""AsyncClient: the Executor's batched submission and result delivery for asyncio programs.

Results are asyncio futures (``asyncio.wrap_future`` of the Executor's futures), completed on
the event loop by the executor's one background thread; the only blocking HTTP on the loop's
behalf (registering a function, sending a ``map`` batch) runs in a worker thread
(``asyncio.to_thread``), so the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterable, Optional

from .executor import Executor


class AsyncClient:
    """``async with AsyncClient(url, token) as faas: value = await faas.run(fn, 1, 2)``.

    ``submit`` returns an awaitable future at once; ``run`` awaits the value; ``map`` awaits
    every value, in input order. Keyword arguments are the function's; the task settings
    (``timeout_ms``, ``max_attempts``) and the executor's tuning go to the constructor, and
    ``options(...)`` makes a view with other task settings.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, **executor_options: Any) -> None:
        self._executor = Executor(url, token, **executor_options)
        self._timeout_ms: Optional[int] = executor_options.get("timeout_ms")
        self._max_attempts: Optional[int] = executor_options.get("max_attempts")

    @property
    def executor(self) -> Executor:
        return self._executor

    def options(self, *, timeout_ms: Optional[int] = None, max_attempts: Optional[int] = None) -> "AsyncClient":
        view = object.__new__(AsyncClient)
        view._executor = self._executor
        view._timeout_ms = self._timeout_ms if timeout_ms is None else timeout_ms
        view._max_attempts = self._max_attempts if max_attempts is None else max_attempts
        return view

    async def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
        """Queues ``fn(*args, **kwargs)``; an awaitable future of its value."""
        await self._registered(fn)
        future = self._executor._submit(fn, args, kwargs, self._timeout_ms, self._max_attempts)
        return asyncio.wrap_future(future)

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """The value of ``fn(*args, **kwargs)`` run remotely (its exception re-raised here)."""
        return await (await self.submit(fn, *args, **kwargs))

    async def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        """``[fn(*args) for args in zip(*iterables)]`` run remotely, in input order; batches go
        through ``/execute_batch``."""
        await self._registered(fn)
        items = list(zip(*iterables))
        executor = self._executor
        chunk = chunksize or executor.chunksize
        from .client import dumps_b64, execution

        fid = executor.function_id(fn)
        futures = []
        for start in range(0, len(items), chunk):
            bodies = [execution(fid, dumps_b64((args, {})), self._timeout_ms, self._max_attempts)
                      for args in items[start:start + chunk]]
            futures.extend(await asyncio.to_thread(executor._submit_batch, bodies))
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    async def aclose(self, cancel_futures: bool = False) -> None:
        """Waits for the pending tasks' results (or cancels the unsent ones) and closes."""
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=cancel_futures)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _registered(self, fn: Callable[..., Any]) -> None:
        # Registration is a blocking request the first time a function is seen.
        if self._executor.cached_function_id(fn) is None:
            await asyncio.to_thread(self._executor.function_id, fn)
