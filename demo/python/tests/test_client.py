"""The synchronous Client and the module-level helpers, against a real stack."""

import os
import subprocess
import sys

import pytest

import faas_client as faas
from faas_stack import free_port
from remote_functions import Oops, echo, fail, nap, square

HERE = os.path.dirname(os.path.abspath(__file__))


def test_example_script_runs(stack):
    env = dict(os.environ, FAAS_GATEWAY_URL=stack.url)
    env.pop("FAAS_TOKEN", None)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "..", "example.py")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "fib(30) = 832040" in out.stdout
    assert "divide(1, 0) raised ZeroDivisionError" in out.stdout
    assert "add(2, 3, scale=10) = 50" in out.stdout
    assert "executor: sum of squares 0..99 = 328350" in out.stdout


def test_module_helpers_keep_the_original_style(stack, monkeypatch):
    monkeypatch.setattr(faas, "_default", faas.Client(stack.url))
    assert faas.deserialize(faas.serialize({"a": [1, 2]})) == {"a": [1, 2]}
    fid = faas.register(square)
    task = faas.run(fid, 12)
    assert faas.result(task, wait=60) == 144
    assert faas.status(task) == "COMPLETED"
    src = faas.register_source("def add(a, b):\n    return a + b\n", "add")
    assert faas.result_json(faas.run_json(src, [2, 3])) == 5


def test_a_kwarg_named_function_id_goes_to_the_function(stack):
    c = faas.Client(stack.url)
    fid = c.register(echo)
    assert c.result(c.run(fid, 1, function_id="mine", x=2)) == ((1,), {"function_id": "mine", "x": 2})


def test_remote_exception_is_reraised_with_its_traceback(stack):
    c = faas.Client(stack.url)
    with pytest.raises(Oops, match="broken") as info:
        c.result(c.run(c.register(fail), "broken"))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "Remote traceback" in notes and "remote_functions.py" in notes and "raise Oops" in notes


def test_source_failure_is_task_failed_with_traceback(stack):
    c = faas.Client(stack.url)
    fid = c.register_source("def div(a, b):\n    return a / b\n", "div")
    with pytest.raises(faas.TaskFailed) as info:
        c.result_json(c.run_json(fid, [1, 0]))
    assert info.value.kind == "ZeroDivisionError"
    assert "in div" in info.value.traceback


def test_timeout_ms_and_max_attempts_reach_the_task(stack):
    c = faas.Client(stack.url)
    fid = c.register(nap)
    quick = c.options(timeout_ms=300, max_attempts=2)
    task = quick.run(fid, 5)
    with pytest.raises(faas.TaskTimeout) as info:
        c.result(task, wait=30)
    assert info.value.kind == "Timeout"
    record = c.task(task)
    assert record["max_attempts"] == 2, record
    # The view did not change the client itself.
    assert c.timeout_ms is None and c.max_attempts is None


def test_waiting_too_little_raises_task_not_finished(stack):
    c = faas.Client(stack.url)
    task = c.run(c.register(nap), 2)
    with pytest.raises(faas.TaskNotFinished) as info:
        c.result(task, wait=0.1)
    assert isinstance(info.value, TimeoutError)
    assert info.value.status in ("QUEUED", "RUNNING")
    assert c.result(task, wait=30) == 2


def test_http_errors_carry_the_gateway_message(stack):
    c = faas.Client(stack.url)
    with pytest.raises(faas.GatewayError) as info:
        c.run("6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10", 1)
    assert info.value.status == 404
    assert "unknown function" in info.value.message
    with pytest.raises(faas.GatewayError) as info:
        c.run("not-an-id")
    assert info.value.status == 400
    with pytest.raises(faas.TaskLost):
        c.result("6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10", wait=1)


def test_unreachable_gateway(stack):
    c = faas.Client(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(faas.GatewayUnreachable) as info:
        c.register(square)
    assert isinstance(info.value, faas.FaasError)
    assert info.value.not_sent


def test_values_cross_both_pickle_paths_unchanged(stack):
    # The children read plain pickles with the C unpickler and dump plain results with the C
    # pickler; anything dill-specific (a lambda sent by value, a subclass of a plain type) goes
    # through dill. Both must give back exactly what was sent.
    from remote_functions import Level

    c = faas.Client(stack.url)
    identity = c.register(lambda x: x)
    for value in (None, True, 7, 2**100, -1.5, "é\x00", b"\x00\xff", "", 0, Level.HIGH, {1, 2}, [None, "a"]):
        got = c.result(c.run(identity, value), wait=60)
        assert got == value and type(got) is type(value), (value, got)
    apply = c.register(lambda f, x: f(x))
    assert c.result(c.run(apply, lambda y: y * 3, 5), wait=60) == 15
