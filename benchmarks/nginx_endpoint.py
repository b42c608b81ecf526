"""nginx answering every POST with ``return 200``: the zero-latency target's own example
of "a local endpoint that costs nothing".

``benchmarks/null_endpoint.py`` does the same in Python and costs about twice nginx's
CPU per request, which on two cores is CPU the importer does not get. The benchmark uses
nginx when it is on the PATH (Debian: ``apt install nginx-light``) and the Python
endpoint otherwise, and says which. nginx runs as one process (``master_process off``),
so its CPU is that process's; its request count comes from ``stub_status``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location = /_status {{ stub_status; }}
        location / {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
    }}
}}
"""


def _nginx() -> str | None:
    # /usr/sbin is not on every user's PATH (Debian's default for non-root users).
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which("nginx", path=path)


def available() -> bool:
    return _nginx() is not None


class Nginx:
    """A running nginx; ``stats()`` answers in the sandbox's shape."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url
        self._status_reads = 0

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "_status", timeout=30) as response:
            text = response.read().decode()
        self._status_reads += 1
        # "Active connections: N \nserver accepts handled requests\n A H R \n..."
        counted = int(text.splitlines()[2].split()[2])  # the "requests" column
        requests = counted - self._status_reads  # this status read is counted too
        ticks = os.sysconf("SC_CLK_TCK")
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return {
            "requests": requests,
            "responses_by_status": {"200": requests},  # `return 200` answers nothing else
            "latency_ms": {"p50": 0.0},  # not measured: answered as soon as each is read
            "cpu_seconds": (int(fields[11]) + int(fields[12])) / ticks,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(workdir: Path) -> Iterator[Nginx]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = workdir / "nginx.conf"
    config.write_text(_CONFIG.format(work=workdir, port=port))
    with (workdir / "nginx.stderr").open("wb") as err:
        process = subprocess.Popen(
            [_nginx() or "nginx", "-c", str(config), "-p", str(workdir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    nginx = Nginx(process, f"http://127.0.0.1:{port}/")
    try:
        _wait_ready(nginx, workdir, port)
        yield nginx
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(nginx: Nginx, workdir: Path, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if nginx.process.poll() is not None:
            error = (workdir / "nginx.stderr").read_text(errors="replace").strip()
            raise RuntimeError(f"nginx exited ({nginx.process.returncode}): {error[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx did not start listening within 10 s")
