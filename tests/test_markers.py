"""The e2e marker is enforced: an unmarked test cannot start a process or a server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest


def test_an_unmarked_test_cannot_start_a_process() -> None:
    with pytest.raises(AssertionError, match=r"mark it @pytest\.mark\.e2e"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_an_unmarked_test_cannot_start_a_server() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="e2e"):
        sock.bind(("127.0.0.1", 0))
        sock.listen()

    async def serve() -> None:
        await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)

    with pytest.raises(AssertionError, match="e2e"):
        asyncio.run(serve())


@pytest.mark.e2e
def test_a_marked_test_can() -> None:
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
