"""Run `watcher run` as a real subprocess and wait for its log lines (events, not sleeps)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO


class DaemonProcess:
    def __init__(self, config: Path, *args: str, cwd: Path | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "run", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.stdout: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.log, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout, False), daemon=True).start()

    def _pump(self, stream: IO[str], sink: list[str], notify: bool) -> None:
        # Closing the pipe here, not at garbage collection, keeps ResourceWarnings out of unrelated tests.
        with stream:
            for line in stream:
                sink.append(line)
                if notify:
                    self.lines.put(line)

    def wait_for(self, fragment: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no log line with {fragment!r}; log so far:\n{''.join(self.log)}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if fragment in line:
                return line

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
