"""pytest fixtures: a private stack (redis-server, faas-gateway, a local-mode faas-dispatcher
with 2 Python children) per session, and a fresh one for tests that restart daemons.

The binaries are the workspace's target/debug ones (build them first: demo/test.sh does), or
those of FAAS_BIN_DIR; the children run FAAS_PYTHON (demo/test.sh exports the project .venv).
A missing binary is an error, never a skip.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from faas_stack import Stack  # noqa: E402

# Functions of remote_functions.py travel by reference: the children must import it. The test
# modules import faas_client, which .venv has as an editable install: its import hook points
# outside the children's sandbox (they see sys.path and PYTHONPATH only), so the SDK's source
# directory goes on PYTHONPATH too, as any module a by-reference function needs must.
SDK_DIR = os.path.dirname(HERE)
STACK_OPTIONS = dict(workers=2, pythonpath=os.pathsep.join([HERE, SDK_DIR]))


@pytest.fixture(scope="session")
def stack():
    with Stack(**STACK_OPTIONS) as s:
        yield s


@pytest.fixture
def private_stack():
    """A stack of the test's own, for tests that stop or restart its daemons."""
    with Stack(**STACK_OPTIONS) as s:
        yield s


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Shows the daemons' logs under a failed test."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("stack", "private_stack"):
            s = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if s is not None:
                report.sections.append((f"{name} logs", s.logs()))


def pytest_sessionfinish(session, exitstatus):
    """A run that collected nothing (a moved directory, a broken import) fails loudly."""
    if session.testscollected == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
