"""The CLI reads, and a second writer polls, while the daemon writes big feeds: never "database is locked".

Each feed gains a hundred items per request, so every poll of the daemon is a long write transaction (items,
stories, near-duplicate index, hits). Readers run as real processes, as a user at a terminal would run
them, in threads so that they overlap the daemon's writes and each other. SQLite's "locked" error would
reach them as an exception, a non-zero exit or, for `poll`, a feed stored as failed with that text in its
error, so the test checks all three.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemonproc import DaemonProcess
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedRequestHandler, FeedServer
from watcher.store import Store

pytestmark = pytest.mark.slow

FEEDS = 4
PER_REQUEST = 100
WINDOW = 1000  # items in a feed at once, like a busy wire service
READERS = [["hits"], ["feeds", "--format", "json"], ["backtest", "--query", "drone* OR Serbia"], ["hits", "--format", "json"]]  # fmt: skip
RUNS_PER_READER = 3
POLLS = 2


@dataclass
class BusyFeed:
    """A feed that gains PER_REQUEST new items on every request and keeps the newest WINDOW."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    made: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, h: FeedRequestHandler) -> None:
        with self.lock:
            now = datetime.now(UTC)
            for _ in range(PER_REQUEST):
                n = self.made
                self.made += 1
                words = "Serbia buys drones" if n % 2 else f"Weather report number {n}"
                link = f"https://busy.example/{self.name}/{n}"
                summary = f"Item {n} of {self.name}: {words}. " * 5
                self.entries.append(Entry(f"{self.name}-{n}", f"{words} {self.name} {n}", link, summary, now))
            del self.entries[:-WINDOW]
            body = rss(self.entries, title=self.name).encode()
        h.respond(200, body)


def run_cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(cfg), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def test_cli_reads_and_a_second_writer_never_see_a_locked_database(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    paths = [f"/busy{i}" for i in range(FEEDS)]
    for p in paths:
        feed_server.handler(p, BusyFeed(p.strip("/")))
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\nfetch_timeout = "20s"\n'
        + "".join(f'[[feeds]]\nurl = "{feed_server.url(p)}"\ninterval = "100ms"\n' for p in paths)
        + f'[channels.screen]\ntype = "console"\nstdout = false\nfile = "{tmp_path / "digests.txt"}"\n'
        '[[topics]]\nname = "arms"\nquery = "drone*"\nchannels = ["screen"]\n',
        encoding="utf-8",
    )
    results: list[tuple[list[str], subprocess.CompletedProcess[str]]] = []
    results_lock = threading.Lock()

    def loop(args: list[str], runs: int) -> None:
        for _ in range(runs):
            done = run_cli(cfg, *args)
            with results_lock:
                results.append((args, done))

    daemon = DaemonProcess(cfg, "--tick", "0.05", "--grace", "10")
    try:
        for p in paths:  # every feed has been polled (and written) once before the readers start
            feed_server.wait_requests(p, 2, timeout=30)
        cycles_before = sum("cycle:" in line for line in daemon.log)
        threads = [threading.Thread(target=loop, args=(r, RUNS_PER_READER)) for r in READERS]
        threads.append(threading.Thread(target=loop, args=(["poll"], POLLS)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        cycles_during = sum("cycle:" in line for line in daemon.log) - cycles_before
        code = daemon.terminate()
    finally:
        daemon.kill()

    assert len(results) == len(READERS) * RUNS_PER_READER + POLLS
    for args, done in results:
        out = done.stdout + done.stderr
        assert done.returncode == 0, f"watcher {' '.join(args)} exited {done.returncode}:\n{out[-2000:]}"
        assert "locked" not in out.lower(), f"watcher {' '.join(args)}:\n{out[-2000:]}"
        assert "internal error" not in out
    polls = [done.stdout for args, done in results if args == ["poll"]]
    assert all(f"polled {FEEDS} feeds" in out and ", 0 failed" in out for out in polls), polls
    backtests = [done.stdout for args, done in results if args[0] == "backtest"]
    assert all(" stored items match" in out for out in backtests)
    assert code == 0
    daemon_log = "".join(daemon.log)
    assert "locked" not in daemon_log.lower(), daemon_log[-3000:]
    assert "Traceback" not in daemon_log, daemon_log[-3000:]
    # The reads really overlapped the daemon's writes: it finished cycles (each one a write) meanwhile.
    assert cycles_during >= 3, daemon_log[-3000:]


def test_reads_finish_while_another_process_holds_the_write_lock(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    # WAL lets readers ignore a writer; a read command must not take a write lock of its own on open
    # (such as a migration check), or it would queue behind the daemon's longest transaction.
    feed_server.serve("/f", rss([Entry("1", "Serbia buys drones", "https://x.example/1", "CH-92A", None)]))
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n[[feeds]]\nurl = "{feed_server.url("/f")}"\n'
        '[[topics]]\nname = "arms"\nquery = "drone*"\n',
        encoding="utf-8",
    )
    assert run_cli(cfg, "poll").returncode == 0
    with Store(tmp_path / "w.db") as writer, writer.transaction():
        writer.set_state("held", "by the test")  # the write lock stays taken until the readers are done
        for args in (["hits", "--format", "json"], ["feeds"], ["backtest", "--query", "drone*"]):
            done = run_cli(cfg, *args)
            assert (done.returncode, "locked" in done.stderr) == (0, False), (args, done.stderr)
            assert "Serbia buys drones" in done.stdout or args == ["feeds"], (args, done.stdout)
