"""Shared fixtures, the hypothesis profile, and the rule behind ``make test-fast``.

Every test that starts a subprocess or a server is marked ``e2e`` (``pytestmark =
pytest.mark.e2e`` for a whole module). Unmarked tests run with process creation and
listening sockets refused, so a missing marker fails loudly instead of quietly making
the fast suite slow.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.e2e import expected_ids
from tests.sandbox_helpers import Sandbox, start_sandbox

E2E = "e2e"

# Hypothesis fails an example that takes over 200 ms, and a run whose data generation is
# slow: wall-clock assertions that a loaded machine trips. Examples are checked for what
# they compute; speed is for make bench.
settings.register_profile(
    "metrix-importer", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("metrix-importer")
_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test itself failed, for fixtures that clean up after it."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    if item.get_closest_marker(E2E) is not None:
        return (yield)
    with _refusing_processes_and_servers(item.nodeid):
        return (yield)


@contextmanager
def _refusing_processes_and_servers(nodeid: str) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(
            f"{nodeid} starts a subprocess or a server: mark it @pytest.mark.e2e "
            "(make test-fast runs only unmarked tests, in seconds)"
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", refuse)
        patch.setattr(socket.socket, "listen", refuse)
        yield


def _require_e2e(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker(E2E) is None:
        raise AssertionError(f"{request.node.nodeid} starts a sandbox: mark it @pytest.mark.e2e")


@pytest.fixture
def make_sandbox(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Sandbox]]:
    """``make_sandbox("--fail-rate", "0.1")`` starts a sandbox on 127.0.0.1 with those
    options (see ``start_sandbox``); each is stopped after the test, and must then exit
    cleanly unless the test already failed. ``sb.stop()`` stops one earlier."""
    _require_e2e(request)
    started: list[Sandbox] = []

    def make(*args: str) -> Sandbox:
        sandbox = start_sandbox(tmp_path, *args)
        started.append(sandbox)
        return sandbox

    yield make
    if request.node.stash.get(_CALL_FAILED, True):
        for sandbox in started:  # don't hide the test's own failure behind a shutdown one
            sandbox.__exit__(AssertionError, None, None)
    else:
        for sandbox in started:
            sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox with default settings and no faults; stopped (cleanly) after the test."""
    return make_sandbox()


@pytest.fixture(scope="session")
def sample_ids() -> set[str]:
    """Message ids of every valid row of the bundled sample (from ``preview``)."""
    return expected_ids()
