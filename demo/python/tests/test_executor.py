"""faas_client.Executor as a concurrent.futures executor, against a real stack."""

import concurrent.futures as cf
import itertools
import json
import time
import urllib.error
import urllib.request

import pytest

import faas_client as faas
from faas_stack import free_port
from remote_functions import Oops, echo, fail, nap, noop, square


@pytest.fixture
def executor(stack):
    with faas.Executor(stack.url) as ex:
        yield ex


def test_is_a_concurrent_futures_executor(executor):
    assert isinstance(executor, cf.Executor)
    future = executor.submit(square, 9)
    assert isinstance(future, cf.Future)
    assert future.result(timeout=60) == 81


def test_map_is_ordered_over_several_iterables(executor):
    assert list(executor.map(pow, range(50), itertools.repeat(2), timeout=60)) == [i**2 for i in range(50)]
    # Tasks that finish out of order still come back in input order.
    delays = [0.3, 0.0, 0.2, 0.0, 0.1]
    assert list(executor.map(nap, delays, range(5), chunksize=2)) == list(range(5))


def test_map_reads_its_input_lazily(executor):
    consumed = []

    def numbers():
        for i in itertools.count():
            consumed.append(i)
            yield i

    results = executor.map(square, numbers(), chunksize=10, buffersize=30)
    first = list(itertools.islice(results, 5))
    assert first == [0, 1, 4, 9, 16]
    # Only the window (plus one refill) was read from an endless input.
    assert len(consumed) <= 50
    results.close()


def test_many_tasks_complete(executor):
    values = list(executor.map(square, range(2000), timeout=120))
    assert values == [i * i for i in range(2000)]
    futures = [executor.submit(square, i) for i in range(500)]
    assert sorted(f.result(timeout=120) for f in futures) == sorted(i * i for i in range(500))


def test_as_completed_and_wait(executor):
    futures = [executor.submit(nap, d, i) for i, d in enumerate([0.6, 0.0, 0.3])]
    order = [f.result() for f in cf.as_completed(futures, timeout=60)]
    assert sorted(order) == [0, 1, 2]
    assert order[0] == 1  # the one without a nap is first
    futures = [executor.submit(nap, 0, i) for i in range(10)] + [executor.submit(nap, 30)]
    done, not_done = cf.wait(futures[:10], timeout=60, return_when=cf.ALL_COMPLETED)
    assert len(done) == 10 and not not_done
    done, not_done = cf.wait(futures, timeout=0.5)
    assert futures[-1] in not_done


def test_remote_exception_with_traceback(executor):
    future = executor.submit(fail, "from a future")
    with pytest.raises(Oops, match="from a future") as info:
        future.result(timeout=60)
    assert "raise Oops" in "\n".join(info.value.__notes__)
    assert isinstance(future.exception(), Oops)


def test_kwargs_including_function_id_reach_the_function(executor):
    assert executor.submit(echo, 1, function_id="f", k=None).result(60) == ((1,), {"function_id": "f", "k": None})


def make_adder(base):
    def add_base(x):  # a closure: dill sends it by value
        return x + base

    return add_base


def test_functions_by_value_and_by_reference_are_registered_once(executor):
    add_ten = make_adder(10)
    assert list(executor.map(add_ten, range(5))) == [10, 11, 12, 13, 14]
    assert executor.submit(add_ten, 5).result(60) == 15
    assert executor.submit(square, 5).result(60) == 25  # by reference (remote_functions)
    assert executor.submit(square, 6).result(60) == 36
    assert len(executor._functions) == 2
    # Another object with the same content: the same function, not registered again.
    assert executor.submit(make_adder(10), 1).result(60) == 11
    assert len(executor._functions) == 2
    # Another captured value: another function.
    assert executor.submit(make_adder(20), 1).result(60) == 21
    assert len(executor._functions) == 3


def test_task_timeout_and_future_timeout(executor):
    with pytest.raises(faas.TaskTimeout):
        executor.options(timeout_ms=300).submit(nap, 5).result(timeout=60)
    slow = executor.submit(nap, 1.5)
    with pytest.raises(cf.TimeoutError):
        slow.result(timeout=0.05)
    assert slow.result(timeout=60) == 1.5
    with pytest.raises(cf.TimeoutError):
        list(executor.map(nap, [3], timeout=0.2))


def test_futures_not_sent_yet_can_be_cancelled(stack):
    ex = faas.Executor(stack.url, poll_ms=10_000)
    first = ex.submit(nap, 2)
    deadline = time.monotonic() + 30
    while not first.running():  # taken by the results thread: its request waits for it
        assert time.monotonic() < deadline
        time.sleep(0.005)
    queued = [ex.submit(square, i) for i in range(5)]
    assert queued[0].cancel()
    ex.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    assert first.result(timeout=0) == 2
    with pytest.raises(RuntimeError):
        ex.submit(square, 1)


def test_shutdown_waits_for_pending_results(stack):
    ex = faas.Executor(stack.url)
    futures = [ex.submit(nap, 0.2, i) for i in range(4)]
    ex.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == [0, 1, 2, 3]


def test_map_survives_a_gateway_restart(private_stack):
    with faas.Executor(private_stack.url) as ex:
        results = ex.map(nap, [0.02] * 120, range(120), chunksize=40, buffersize=80)
        first = [next(results) for _ in range(5)]
        private_stack.restart_gateway()
        rest = list(results)
        assert first + rest == list(range(120))
        # And new work goes through the new gateway.
        assert ex.submit(square, 3).result(timeout=60) == 9


def test_unreachable_gateway_fails_instead_of_hanging():
    ex = faas.Executor(f"http://127.0.0.1:{free_port()}", unreachable_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(faas.GatewayUnreachable):
        ex.submit(noop)
    assert time.monotonic() - started < 10
    ex.shutdown()


def test_an_invalid_task_fails_alone(executor):
    good = [executor.submit(square, i) for i in range(3)]
    bad = executor.options(timeout_ms=0).submit(square, 1)
    more = [executor.submit(square, i) for i in range(3, 6)]
    with pytest.raises(faas.GatewayError) as info:
        bad.result(timeout=60)
    assert info.value.status == 400 and "timeout_ms" in info.value.message
    assert [f.result(timeout=60) for f in good + more] == [i * i for i in range(6)]


def test_token(tmp_path):
    from faas_stack import Stack

    with Stack(workers=1, pythonpath=str(tmp_path), gateway_args=("--token", "s3cret")) as stack:
        with faas.Executor(stack.url, token="s3cret") as ex:
            assert list(ex.map(pow, [2, 3], [2, 2])) == [4, 9]
        with pytest.raises(faas.GatewayError) as info:
            faas.Executor(stack.url, token="wrong").submit(pow, 2, 2)
        assert info.value.status == 401


def _sent(future, timeout=30.0):
    """Waits until the future's task is on the platform (its id came back)."""
    deadline = time.monotonic() + timeout
    while future.task_id is None:
        assert time.monotonic() < deadline, "the task was never submitted"
        time.sleep(0.005)
    return future.task_id


def test_a_sent_future_cancels_here_with_or_without_the_cancel_route(executor):
    slow = executor.submit(nap, 5)
    _sent(slow)
    other = executor.submit(square, 3)
    assert slow.cancel() and slow.cancelled()
    done, not_done = cf.wait([slow, other], timeout=30)
    assert not not_done
    assert other.result() == 9
    with pytest.raises(cf.CancelledError):
        slow.result(timeout=0)
    assert not other.cancel()  # finished futures stay finished


def _has_cancel_route(url):
    try:
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as r:
            return "/tasks/{id}/cancel" in json.load(r).get("paths", {})
    except urllib.error.HTTPError:
        return False


def test_cancel_and_shutdown_cancel_the_tasks_on_the_gateway(private_stack):
    if not _has_cancel_route(private_stack.url):
        pytest.skip("this gateway has no POST /tasks/{id}/cancel (built before the task API)")
    client = faas.Client(private_stack.url)
    ex = faas.Executor(private_stack.url)
    futures = [ex.submit(nap, 30, i) for i in range(4)]
    ids = [_sent(f) for f in futures]
    assert futures[0].cancel()
    ex.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in futures)
    deadline = time.monotonic() + 30
    while any(client.status(t) != "FAILED" for t in ids):
        assert time.monotonic() < deadline, [client.status(t) for t in ids]
        time.sleep(0.05)
