"""What `watcher poll` loads: a warm poll cycle is mostly interpreter start-up, so a command imports only what
it uses. Also what the start-up savings in watcher/fetch.py must not change: trio stays importable, and
https still verifies certificates although the CA bundle now loads at the first handshake."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.feedserver import FeedServer
from watcher.fetch import Fetcher
from watcher.models import FetchRequest, FetchSettings, FetchStatus

ROOT = Path(__file__).resolve().parents[1]
FEED = ROOT / "tests" / "data" / "feeds" / "rss2.xml"

# Not needed by a poll of plain feeds: the daemon's scheduler, digest rendering, OPML, article extraction,
# the HTTP endpoints, and httpcore with what it loads (watcher/http1.py is the transport).
NOT_FOR_POLL = (
    "apscheduler",
    "jinja2",
    "listparser",
    "requests",
    "trafilatura",
    "starlette",
    "uvicorn",
    "feedgen",
    "prometheus_client",
    "trio",
    "certifi",
    "httpcore",
    "anyio",
    "h11",
)


def _python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


# Runs a command as `python -m watcher` does and writes, at exit, every module the process ever loaded.
_RUN_AND_LIST = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "watcher"
runpy.run_module("watcher", run_name="__main__", alter_sys=True)
"""


def _modules(out: Path, *args: str, cwd: Path) -> set[str]:
    done = _python("-c", _RUN_AND_LIST, str(out), *args, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(out.read_text()))


def test_poll_imports_only_what_it_uses(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/feed.xml", FEED)
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f"[watcher]\ndatabase = '{tmp_path / 'w.db'}'\nallow_private_addresses = true\n\n"
        f"[[feeds]]\nurl = '{feed_server.url('/feed.xml')}'\n\n"
        "[[topics]]\nname = 'any'\nquery = 'the'\n",
        encoding="utf-8",
    )
    modules = _modules(tmp_path / "modules.json", "--config", str(cfg), "poll", cwd=tmp_path)
    assert {"watcher.fetch", "watcher.pipeline", "watcher.parse", "watcher.http1"} <= modules  # the poll ran
    bare = _python("-c", "import json, sys; print(json.dumps(sorted(sys.modules)))", cwd=tmp_path)
    modules -= set(json.loads(bare.stdout))  # what the interpreter's own start-up loads is not the command's
    assert sorted(m for m in modules if m.split(".")[0] in NOT_FOR_POLL) == []


def test_trio_is_importable_after_the_fetcher() -> None:
    pytest.importorskip("trio")
    code = (
        "import sys, watcher.fetch\n"
        "assert 'trio' not in sys.modules, 'the fetcher loaded trio'\n"
        "import trio\n"
        "print(trio.__name__)\n"
    )
    done = _python("-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "trio"


@contextmanager
def _tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A TLS listener on 127.0.0.1 that completes handshakes (or fails them) and answers nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1024)
                except (OSError, ssl.SSLError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


@pytest.mark.anyio
async def test_https_verifies_certificates_with_the_lazily_loaded_bundle(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from tests.smtpserver import self_signed

    _cert, server_context = self_signed(tmp_path)
    with _tls_server(server_context) as port:
        async with Fetcher() as fetcher:
            result = await fetcher.fetch(
                FetchRequest(url=f"https://127.0.0.1:{port}/feed", settings=FetchSettings(timeout=5))
            )
    assert result.status == FetchStatus.ERROR
    assert result.error_kind == "tls"
    assert result.error is not None and "certificate verify failed" in result.error
