"""Executor: a ``concurrent.futures.Executor`` whose tasks run on the FaaS platform.

How tasks travel (few HTTP requests, whatever the number of tasks, over ``http.client``
keep-alive connections: see ``_http.FastHttp``):

* a function is registered once per executor, keyed by the hash of its dill pickle;
* ``submit`` queues the task; the executor's one background thread sends every queued task in
  its next ``POST /results/wait`` request (``executions``), so a loop of ``submit`` calls is
  batched by itself and a lone ``submit(...).result()`` costs one request;
* ``map`` submits from the calling thread in chunks through ``POST /execute_batch`` and keeps
  at most ``buffersize`` tasks in flight, reading its input lazily;
* results reach futures through the same background thread: each ``POST /results/wait`` names
  every pending task (up to 10,000) and returns as soon as at least one is terminal. The reply's
  cursor lets the next request name the same ids without the gateway reading them again. Since
  a poll's cost grows with the ids it names, the thread waits 10 us per pending task (at most
  ``poll_ms``) between polls: with thousands pending, each poll brings tens of results instead
  of one or two (see ``Executor._linger``).

A future is cancellable until its task is sent, as any ``concurrent.futures`` future. After
that (the future is RUNNING; its ``task_id`` attribute is the task's id), ``cancel()`` still
cancels it here at once, so ``result()``, ``as_completed`` and ``wait`` see it cancelled, and
the results thread asks the gateway to cancel the task (``POST /tasks/{id}/cancel``). A gateway
that answers 409 (already finished), 404 or 405 (no such route on an older gateway) changes
nothing here: the local future stays cancelled. ``shutdown(cancel_futures=True)`` cancels the
futures not sent yet and the sent tasks whose ids are known, not those whose submission request
is still on its way. ``map`` cancels the tasks it has in flight when its iterator is closed
early. When the gateway cannot be reached the thread retries with back-off (tasks are
durable: a gateway restart loses nothing) and fails the pending futures with
GatewayUnreachable after ``unreachable_timeout`` seconds.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures as cf
import hashlib
import itertools
import re
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator, Optional

import dill

from ._http import gateway_token, gateway_url, make_http
from .client import dill_outcome, dumps_b64, execution, unknown_task
from .errors import FaasError, GatewayError, GatewayUnreachable

# The gateway's bound on ids (and executions) in one /results/wait request.
MAX_IDS = 10_000
# Tasks submitted in one /results/wait request (the rest wait for the next).
MAX_SUBMIT = 2_000
# Seconds the results thread waits between polls per pending task (see Executor._linger): 10 us
# an id keeps the polls' per-id cost (about 1 us an id, client and gateway) near a tenth of
# the time they cover.
LINGER_PER_ID = 10e-6


class Executor(cf.Executor):
    """Runs Python callables on the FaaS platform, as ``concurrent.futures`` executors do.

    ``url``/``token``: the gateway (default ``FAAS_GATEWAY_URL``, ``FAAS_TOKEN``).
    ``timeout_ms``/``max_attempts``: of every task (None: the platform's defaults); per call,
    ``executor.options(timeout_ms=...).submit(...)``. ``chunksize``: tasks per
    ``/execute_batch`` request of ``map``. ``buffersize``: tasks ``map`` keeps in flight.
    ``poll_ms``: how long one result request may wait on the gateway; a task submitted while
    one waits is sent when it returns. ``request_timeout``: seconds an HTTP request may take
    beyond its wait. ``unreachable_timeout``: seconds of failed attempts to reach the gateway
    before pending futures fail.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout_ms: Optional[int] = None,
        max_attempts: Optional[int] = None,
        chunksize: int = 500,
        buffersize: int = 10_000,
        poll_ms: int = 50,
        request_timeout: float = 10.0,
        unreachable_timeout: float = 60.0,
    ) -> None:
        if chunksize < 1 or buffersize < 1:
            raise ValueError("chunksize and buffersize must be at least 1")
        self.url = gateway_url(url)
        self._token = gateway_token(token)
        self.timeout_ms = timeout_ms
        self.max_attempts = max_attempts
        self.chunksize = min(chunksize, MAX_IDS)
        self.buffersize = buffersize
        self.poll_ms = poll_ms
        self.request_timeout = request_timeout
        self.unreachable_timeout = unreachable_timeout
        # The calling threads' requests (registrations, map batches), one at a time.
        self._http = make_http(self.url, self._token, request_timeout)
        self._http_lock = threading.Lock()
        # The connection of round trips sent by result() itself (see _send_inline), and how
        # many of those are on their way (the results thread stays until they are handed over).
        self._inline_http: Any = None
        self._inline_lock = threading.Lock()
        self._inline = 0
        self._functions: dict[bytes, str] = {}
        self._by_object: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._cond = threading.Condition()
        # Tasks not sent yet: (future, execution body, whether the future is already running
        # because a refused request is being sent again).
        self._outbox: collections.deque[_Queued] = collections.deque()
        # Sent tasks by id, and which of them the current cursor covers.
        self._pending: dict[str, cf.Future[Any]] = {}
        self._fresh: list[str] = []
        self._covered: list[str] = []
        self._cursor: Optional[str] = None
        # Ids of sent tasks whose futures were cancelled: the results thread cancels them on
        # the gateway (id, attempts so far).
        self._cancels: list[tuple[str, int]] = []
        self._shutdown = False
        self._thread: Optional[threading.Thread] = None

    # -- the concurrent.futures API -------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._submit(fn, args, kwargs, self.timeout_ms, self.max_attempts)

    def map(  # type: ignore[override]
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: Optional[float] = None,
        chunksize: Optional[int] = None,
        buffersize: Optional[int] = None,
    ) -> Iterator[Any]:
        """Like ``Executor.map``: results in input order; ``timeout`` counts from this call.
        The input is read lazily: at most ``buffersize`` tasks are in flight, submitted
        ``chunksize`` at a time through ``/execute_batch``."""
        return self._map(fn, iterables, timeout, chunksize, buffersize, self.timeout_ms, self.max_attempts)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            queued: list[cf.Future[Any]] = []
            sent: list[cf.Future[Any]] = []
            if cancel_futures:
                queued = [q[0] for q in self._outbox]
                self._outbox.clear()
                sent = list(self._pending.values())
            self._cond.notify_all()
        # Outside the lock: a future's cancel takes its own lock, then this executor's.
        for future in queued + sent:
            future.cancel()
        with self._cond:
            thread = self._thread
        if wait and thread is not None:
            thread.join()
        if wait:
            self._http.close()
            with self._inline_lock:
                if self._inline_http is not None:
                    self._inline_http.close()

    def options(self, *, timeout_ms: Optional[int] = None, max_attempts: Optional[int] = None) -> "ExecutorOptions":
        """``submit`` and ``map`` with these task settings (``executor.options(timeout_ms=500)``)."""
        return ExecutorOptions(
            self,
            self.timeout_ms if timeout_ms is None else timeout_ms,
            self.max_attempts if max_attempts is None else max_attempts,
        )

    # -- submission -----------------------------------------------------------------------

    def function_id(self, fn: Callable[..., Any]) -> str:
        """Registers ``fn`` once per executor (keyed by the hash of its pickle); its id. A
        function object is pickled once: define it again (a new object) to send a new version."""
        fid = self.cached_function_id(fn)
        if fid is not None:
            return fid
        blob = dill.dumps(fn)
        key = hashlib.blake2b(blob, digest_size=20).digest()
        fid = self._functions.get(key)
        if fid is None:
            body = {"name": getattr(fn, "__name__", "function"), "payload": base64.b64encode(blob).decode()}
            fid = str(self._request("/register_function", body)["function_id"])
            self._functions[key] = fid
        try:
            self._by_object[fn] = fid
        except TypeError:  # not weakly referenceable (a builtin): hashed every time
            pass
        return fid

    def cached_function_id(self, fn: Callable[..., Any]) -> Optional[str]:
        """The id of a function object this executor registered already, if any."""
        try:
            return self._by_object.get(fn)
        except TypeError:
            return None

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        timeout_ms: Optional[int], max_attempts: Optional[int],
    ) -> cf.Future[Any]:
        self._check_open()
        body = execution(self.function_id(fn), dumps_b64((args, kwargs)), timeout_ms, max_attempts)
        future: cf.Future[Any] = _TaskFuture(self)
        with self._cond:
            self._check_open()
            self._outbox.append((future, body, False))
            self._start_thread()
            self._cond.notify()
        return future

    def _map(
        self, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...], timeout: Optional[float],
        chunksize: Optional[int], buffersize: Optional[int], timeout_ms: Optional[int], max_attempts: Optional[int],
    ) -> Iterator[Any]:
        self._check_open()
        end = None if timeout is None else time.monotonic() + timeout
        chunk = max(1, min(chunksize or self.chunksize, MAX_IDS))
        window = max(chunk, buffersize or self.buffersize)
        fid = self.function_id(fn)
        items = zip(*iterables)
        inflight: collections.deque[cf.Future[Any]] = collections.deque()

        def refill() -> None:
            while len(inflight) + chunk <= window or not inflight:
                if self._shutdown:
                    return
                batch = list(itertools.islice(items, chunk))
                if not batch:
                    return
                bodies = [execution(fid, dumps_b64((args, {})), timeout_ms, max_attempts) for args in batch]
                inflight.extend(self._submit_batch(bodies))

        refill()  # the first window goes out now, as Executor.map submits at call time

        def results() -> Iterator[Any]:
            try:
                while inflight:
                    future = inflight[0]
                    left = None if end is None else end - time.monotonic()
                    value = future.result(left)
                    inflight.popleft()
                    if len(inflight) + chunk <= window:
                        refill()
                    yield value
            finally:
                for future in inflight:
                    future.cancel()

        return results()

    def _submit_batch(self, bodies: list[dict[str, Any]]) -> list[cf.Future[Any]]:
        """Sends tasks through /execute_batch now; their futures (running)."""
        reply = self._request("/execute_batch", {"executions": bodies})
        futures: list[cf.Future[Any]] = []
        with self._cond:
            for task_id in reply["task_ids"]:
                future = _TaskFuture(self)
                future.task_id = task_id
                future.set_running_or_notify_cancel()
                self._pending[task_id] = future
                self._fresh.append(task_id)
                futures.append(future)
            self._start_thread()
            self._cond.notify()
        return futures

    def _request(self, path: str, body: Any) -> Any:
        """A request from a calling thread, resent while the gateway refuses connections (it
        never got those) for up to ``unreachable_timeout`` seconds."""
        give_up = time.monotonic() + self.unreachable_timeout
        delay = 0.05
        while True:
            try:
                with self._http_lock:
                    return self._http.request("POST", path, body)
            except GatewayUnreachable as e:
                if not e.not_sent or time.monotonic() + delay > give_up:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="faas-executor-results", daemon=True)
            self._thread.start()

    # -- the results thread ---------------------------------------------------------------

    def _run(self) -> None:
        http = make_http(self.url, self._token, self.request_timeout)
        unreachable_since: Optional[float] = None
        delay = 0.05
        try:
            while True:
                with self._cond:
                    while not self._outbox and not self._pending and not self._cancels and (
                            not self._shutdown or self._inline):
                        self._cond.wait()
                    if not self._outbox and not self._pending and not self._cancels and not self._inline:
                        return
                    cancels, self._cancels = self._cancels, []
                if cancels:
                    self._cancel_tasks(http, cancels)
                    continue
                with self._cond:
                    batch: list[tuple[cf.Future[Any], dict[str, Any]]] = []
                    while self._outbox and len(batch) < MAX_SUBMIT:
                        future, execution_body, resent = self._outbox.popleft()
                        if resent or future.set_running_or_notify_cancel():
                            batch.append((future, execution_body))
                    room = MAX_IDS - len(batch)
                    covered = [t for t in self._covered if t in self._pending]
                    fresh = [t for t in self._fresh if t in self._pending]
                    if len(covered) > room:
                        fresh = covered[room:] + fresh
                        covered = covered[:room]
                    room -= len(covered)
                    fresh, self._fresh = fresh[:room], fresh[room:]
                    self._covered = []
                    if not batch and not covered and not fresh and self._pending:
                        fresh = list(itertools.islice(self._pending, room))
                    cursor = self._cursor
                    more = bool(self._outbox)
                if not batch and not covered and not fresh:
                    continue
                wait_ms = 0 if more else self.poll_ms
                body: dict[str, Any] = {"wait_ms": wait_ms}
                if fresh:
                    body["task_ids"] = fresh
                if covered and cursor is not None:
                    body["cursor"] = cursor
                    body["cursor_ids"] = covered
                elif covered:
                    body["task_ids"] = covered + fresh
                if batch:
                    body["executions"] = [b for _, b in batch]
                try:
                    reply = http.request("POST", "/results/wait", body, extra=wait_ms / 1000)
                except FaasError as e:
                    retry = isinstance(e, GatewayUnreachable) or (isinstance(e, GatewayError) and e.status >= 500)
                    self._failed_call(e, retry, batch, covered + fresh)
                    if not retry:
                        continue
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > self.unreachable_timeout:
                        self._fail_everything(e)
                        unreachable_since = None
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                unreachable_since = None
                delay = 0.05
                self._deliver(reply, batch, covered + fresh)
                self._linger()
        except BaseException as e:  # never leave futures hanging if this thread dies
            self._fail_everything(e)
            raise
        finally:
            http.close()

    def _linger(self) -> None:
        """Waits a little before the next poll when many tasks are pending: a poll names every
        pending id, so its cost (encoding here, parsing on the gateway) grows with their number,
        and polling again at once would return only the one or two results finished meanwhile.
        Waiting ``LINGER_PER_ID`` per pending id (at most ``poll_ms``) makes each poll carry
        proportionally more results. Queued submissions end the wait at once."""
        with self._cond:
            linger = min(self.poll_ms / 1000, len(self._pending) * LINGER_PER_ID)
            if linger >= 0.001 and not self._outbox and not self._cancels:
                self._cond.wait_for(lambda: bool(self._outbox or self._cancels), linger)

    def _deliver(self, reply: dict[str, Any], batch: list[tuple[cf.Future[Any], dict[str, Any]]], asked: list[str]) -> None:
        done: list[tuple[cf.Future[Any], Any]] = []
        with self._cond:
            submitted = [str(t) for t in reply.get("submitted", [])]
            for (future, _), task_id in zip(batch, submitted):
                future.task_id = task_id  # type: ignore[attr-defined]
                if not future.cancelled():
                    self._pending[task_id] = future
                elif not future.cancel_queued:  # type: ignore[attr-defined]
                    # Cancelled while its request was on the way: cancel the task now.
                    future.cancel_queued = True  # type: ignore[attr-defined]
                    self._cancels.append((task_id, 0))
            for r in reply.get("results", []):
                future = self._pending.pop(str(r["task_id"]), None)
                if future is not None:
                    done.append((future, r))
            for task_id in reply.get("unknown", []):
                future = self._pending.pop(str(task_id), None)
                if future is not None:
                    done.append((future, unknown_task(str(task_id))))
            self._cursor = reply.get("cursor")
            self._covered = [t for t in itertools.chain(asked, submitted) if t in self._pending]
        for future, outcome in done:
            if isinstance(outcome, BaseException):
                _settle(future, False, outcome)
                continue
            _settle_reply(future, outcome)

    def _send_inline(self, future: "_TaskFuture", timeout: Optional[float]) -> None:
        """``result()`` of a future still queued as the last task sends it from the calling
        thread: its ``/results/wait`` request submits it and waits up to ``poll_ms`` for its
        result, on a connection of its own. ``submit(...).result()`` then costs one request and
        no thread hand-over in either direction (the results thread, woken by ``submit``, finds
        the queue empty, and is not woken after). A task not finished within the wait is handed
        to the results thread; a failed request is handled as the results thread handles its
        own."""
        if not self._inline_lock.acquire(blocking=False):
            return  # another thread's round trip is on the connection: leave it to the thread
        try:
            with self._cond:
                if not self._outbox or self._outbox[-1][0] is not future or self._outbox[-1][2]:
                    return
                _, body, _ = self._outbox.pop()
                if not future.set_running_or_notify_cancel():
                    return
                self._inline += 1
            try:
                wait_ms = self.poll_ms if timeout is None else max(0, min(self.poll_ms, int(timeout * 1000)))
                if self._inline_http is None:
                    self._inline_http = make_http(self.url, self._token, self.request_timeout)
                try:
                    reply = self._inline_http.request(
                        "POST", "/results/wait", {"executions": [body], "wait_ms": wait_ms}, extra=wait_ms / 1000)
                except FaasError as e:
                    retry = isinstance(e, GatewayUnreachable) or (isinstance(e, GatewayError) and e.status >= 500)
                    self._failed_call(e, retry, [(future, body)], [])
                    return
                self._deliver_inline(future, reply)
            finally:
                with self._cond:
                    self._inline -= 1
                    self._start_thread()
                    # Only when this round trip left the thread something to do (its task to
                    # wait for, one to resend or cancel, a shutdown waiting for this call), not
                    # on every round trip to find nothing.
                    if self._outbox or self._pending or self._cancels or self._shutdown:
                        self._cond.notify()
        finally:
            self._inline_lock.release()

    def _deliver_inline(self, future: "_TaskFuture", reply: dict[str, Any]) -> None:
        submitted = [str(t) for t in reply.get("submitted", [])]
        if len(submitted) != 1:
            _settle(future, False, GatewayError(f"the gateway submitted {len(submitted)} tasks for one", 502))
            return
        task_id = submitted[0]
        outcome = next((r for r in reply.get("results", []) if str(r.get("task_id")) == task_id), None)
        with self._cond:
            future.task_id = task_id
            if future.cancelled():
                if outcome is None and not future.cancel_queued:
                    future.cancel_queued = True
                    self._cancels.append((task_id, 0))
                return
            if outcome is None:  # still running: the results thread waits for it from now on
                self._pending[task_id] = future
                self._fresh.append(task_id)
                return
        _settle_reply(future, outcome)

    def _cancel_on_server(self, future: "_TaskFuture") -> None:
        """Called by a sent future's ``cancel``: its task is cancelled on the gateway by the
        results thread (at once if its id is known, else when the reply naming it arrives)."""
        with self._cond:
            if future.task_id is None or future.cancel_queued:
                return
            future.cancel_queued = True
            self._pending.pop(future.task_id, None)
            self._cancels.append((future.task_id, 0))
            self._start_thread()
            self._cond.notify()

    def _cancel_tasks(self, http: Any, cancels: list[tuple[str, int]]) -> None:
        """``POST /tasks/{id}/cancel`` for each id. 409 (already finished), 404 (unknown id,
        or a gateway without the route) and 405 end the attempt: the local future is cancelled
        whatever the gateway says. A lost connection or a 5xx is tried again, three times."""
        again: list[tuple[str, int]] = []
        for task_id, attempts in cancels:
            try:
                http.request("POST", f"/tasks/{task_id}/cancel")
            except GatewayError as e:
                if e.status >= 500 and attempts < 2:
                    again.append((task_id, attempts + 1))
            except GatewayUnreachable:
                if attempts < 2:
                    again.append((task_id, attempts + 1))
        if again:
            time.sleep(0.05)
            with self._cond:
                self._cancels.extend(again)

    def _failed_call(self, error: FaasError, retry: bool, batch: list[tuple[cf.Future[Any], dict[str, Any]]], asked: list[str]) -> None:
        lost: list[tuple[cf.Future[Any], FaasError]] = []
        with self._cond:
            if batch:
                bad = _bad_execution(error, len(batch)) if not retry else None
                if bad is not None:
                    # One invalid execution refused the whole request: it fails, the others
                    # were not submitted and go again.
                    lost.append((batch[bad][0], error))
                    resend = batch[:bad] + batch[bad + 1:]
                elif retry and (isinstance(error, GatewayError) or getattr(error, "not_sent", False)):
                    resend = batch  # refused whole: nothing was submitted
                else:
                    # After a broken connection nobody knows whether they were submitted, and
                    # sending them again could run them twice.
                    resend = []
                    lost.extend((f, error) for f, _ in batch)
                self._outbox.extendleft((f, b, True) for f, b in reversed(resend))
            elif not retry:
                lost.extend((f, error) for t in asked if (f := self._pending.pop(t, None)) is not None)
            self._fresh = [t for t in asked if t in self._pending] + self._fresh
        for future, e in lost:
            _settle(future, False, e)

    def _fail_everything(self, error: BaseException) -> None:
        with self._cond:
            futures = list(self._pending.values()) + [q[0] for q in self._outbox]
            self._pending.clear()
            self._outbox.clear()
            self._fresh, self._covered = [], []
        for future in futures:
            if not future.done():
                try:
                    future.set_exception(error)
                except cf.InvalidStateError:
                    pass


_Queued = tuple[cf.Future[Any], dict[str, Any], bool]


def _settle(future: cf.Future[Any], ok: bool, value: Any) -> None:
    """Sets a future's outcome unless it was cancelled meanwhile."""
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except cf.InvalidStateError:
        pass


def _settle_reply(future: cf.Future[Any], reply: dict[str, Any]) -> None:
    """Settles a future with a terminal result reply (a result that does not unpickle here
    is its exception)."""
    try:
        ok, value = dill_outcome(reply)
    except BaseException as e:
        ok, value = False, e
    _settle(future, ok, value)


class _TaskFuture(cf.Future):  # type: ignore[type-arg]
    """A future of one task. Until its task is sent it cancels as any future does; after (it
    is RUNNING then), ``cancel`` still cancels it here (waiters and callbacks see it cancelled)
    and has the executor cancel the task on the gateway (``POST /tasks/{id}/cancel``)."""

    def __init__(self, executor: Executor) -> None:
        super().__init__()
        self._executor = executor
        self.task_id: Optional[str] = None
        self.cancel_queued = False

    def result(self, timeout: Optional[float] = None) -> Any:
        if self._state == cf._base.PENDING:  # type: ignore[has-type]
            started = time.monotonic()
            self._executor._send_inline(self, timeout)
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - started))
        return super().result(timeout)

    def cancel(self) -> bool:
        with self._condition:  # type: ignore[attr-defined]
            state = self._state  # type: ignore[has-type]
            if state == cf._base.FINISHED:
                return False
            if state in (cf._base.CANCELLED, cf._base.CANCELLED_AND_NOTIFIED):
                return True
            sent = state == cf._base.RUNNING
            if sent:
                # Running futures never pass through set_running_or_notify_cancel again, so
                # the waiters of as_completed and wait hear of the cancellation here.
                self._state = cf._base.CANCELLED_AND_NOTIFIED
                for waiter in self._waiters:  # type: ignore[attr-defined]
                    waiter.add_cancelled(self)
            else:
                self._state = cf._base.CANCELLED
            self._condition.notify_all()  # type: ignore[attr-defined]
        self._invoke_callbacks()  # type: ignore[attr-defined]
        if sent:
            self._executor._cancel_on_server(self)
        return True


def _bad_execution(error: FaasError, count: int) -> Optional[int]:
    """The index of the execution a 4xx names (``executions[3]: unknown function ...``)."""
    match = re.match(r"executions\[(\d+)\]", getattr(error, "message", "") or "")
    if isinstance(error, GatewayError) and match and int(match.group(1)) < count:
        return int(match.group(1))
    return None


class ExecutorOptions:
    """``submit`` and ``map`` of an Executor with other task settings."""

    def __init__(self, executor: Executor, timeout_ms: Optional[int], max_attempts: Optional[int]) -> None:
        self._executor = executor
        self.timeout_ms = timeout_ms
        self.max_attempts = max_attempts

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._executor._submit(fn, args, kwargs, self.timeout_ms, self.max_attempts)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: Optional[float] = None,
            chunksize: Optional[int] = None, buffersize: Optional[int] = None) -> Iterator[Any]:
        return self._executor._map(fn, iterables, timeout, chunksize, buffersize, self.timeout_ms, self.max_attempts)
