"""Servers and a browser for the tests and the benchmarks: one way to start them.

:func:`streamlit_server` runs ``streamlit run streamlit_app.py`` and :func:`api_server` ``uvicorn pneumo_api:app``
on a free loopback port and wait, up to a deadline, for their health check; :func:`launch_chromium` opens Debian's
Chromium through Playwright (which cannot download browsers here) with the flags this closed network needs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # without these, Chromium keeps dialling hosts this machine cannot reach
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
HEALTH_DEADLINE_S = 90.0


class ServerStartError(RuntimeError):
    """The server exited or was not healthy before the deadline; its log says why."""


class RunningServer(NamedTuple):
    url: str
    process: subprocess.Popen
    log: Path
    healthy_after_s: float  # from the process start to its first healthy answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


@contextmanager
def running_server(
    command: list[str],
    ready: Callable[[], bool],
    log: Path,
    deadline_s: float = HEALTH_DEADLINE_S,
    cwd: Path = PROJECT_ROOT,
    **env: str,
) -> Iterator[tuple[subprocess.Popen, float]]:
    """``command`` started in ``cwd`` (the project root, or a baseline checkout) with extra environment variables,
    its output in ``log``: (the process, seconds to health) once ``ready()`` is true (``ServerStartError`` if it
    exits or the deadline passes first); stopped on exit."""
    with open(log, "w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT)
        try:
            while not ready():
                if process.poll() is not None or time.perf_counter() - started > deadline_s:
                    raise ServerStartError(f"{' '.join(command[:3])} was not healthy within {deadline_s:.0f} s; see {log}")
                time.sleep(0.1)
            yield process, time.perf_counter() - started
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def streamlit_server(log: Path, deadline_s: float = HEALTH_DEADLINE_S, **env: str) -> Iterator[RunningServer]:
    """``streamlit run`` on a free loopback port with extra environment variables; stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1"]
    with running_server(command, partial(_answers, f"{url}/_stcore/health"), log, deadline_s, **env) as (
        process,
        healthy_after_s,
    ):
        yield RunningServer(url, process, log, healthy_after_s)


@contextmanager
def api_server(
    log: Path,
    deadline_s: float = HEALTH_DEADLINE_S,
    cwd: Path = PROJECT_ROOT,
    options: tuple[str, ...] = (),
    **env: str,
) -> Iterator[RunningServer]:
    """``uvicorn pneumo_api:app [options]`` run in ``cwd`` (the project root, a baseline checkout, or any folder: the
    code is imported from ``cwd`` first, then from this project) on a free loopback port, yielded once ``/readyz``
    answers; stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "pneumo_api:app", "--host", "127.0.0.1", "--port", str(port), *options]
    path = os.pathsep.join([str(cwd), str(PROJECT_ROOT)])
    ready = partial(_answers, f"{url}/readyz")
    with running_server(command, ready, log, deadline_s, cwd, PYTHONPATH=path, **env) as (process, healthy_after_s):
        yield RunningServer(url, process, log, healthy_after_s)


NGINX_CONFIG = PROJECT_ROOT / "deploy" / "nginx.conf"
"""The documented nginx configuration (docs/deployment.md): listening on :8080, replicas on :8001 and :8002."""


@contextmanager
def nginx_proxy(replicas: list[str], prefix: Path, deadline_s: float = 30.0) -> Iterator[str]:
    """Debian's nginx running :data:`NGINX_CONFIG` in the foreground, its replica and listening addresses replaced by
    ``replicas`` (``http://127.0.0.1:PORT`` each) and a free port; yields the proxy's URL; stopped on exit."""
    first, second = (url.removeprefix("http://") for url in replicas)
    port = free_port()
    config = NGINX_CONFIG.read_text()
    for documented, used in (("127.0.0.1:8001", first), ("127.0.0.1:8002", second), ("127.0.0.1:8080", f"127.0.0.1:{port}")):
        assert documented in config, documented
        config = config.replace(documented, used)
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(config)
    command = ["nginx", "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-g", "daemon off;"]
    url = f"http://127.0.0.1:{port}"
    with running_server(command, partial(_answers, f"{url}/healthz"), prefix / "output.log", deadline_s):
        yield url


@contextmanager
def redis_server(log: Path, deadline_s: float = 30.0) -> Iterator[str]:
    """A throwaway Redis (Debian's ``redis-server``: loopback, nothing saved to disk) on a free port; yields its URI."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with running_server(command, partial(_accepts, port), log, deadline_s):
        yield f"redis://127.0.0.1:{port}"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


def launch_chromium(playwright):
    """A headless Debian Chromium through a started ``sync_playwright()``."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
