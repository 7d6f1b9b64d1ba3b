"""The contestants of bench_cycle.py: Watcher and the tools a desk would otherwise use, behind one interface.

Each peer is a command run as a child process with its own state directory, so a cold cycle is "delete the
state, run", a warm cycle "run again", and every measurement comes from the kernel: wall time, the CPU time
of the child and its waited-for descendants (``wait4``), and peak memory: the larger of the biggest single
process's peak RSS (``ru_maxrss``) and the PSS summed over the process tree, sampled from /proc every 0.1 s
(a process pool's workers add up, without counting pages shared since the fork twice).

A peer that cannot be installed is skipped with its reason; nothing here makes the benchmark fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys of the process tree, seconds
    rss_mb: float  # max(largest single process's peak RSS, sampled PSS sum over the tree)
    status: int
    output: str = ""


# --- measuring a child process ------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_rss(pid: int) -> int:
    """Memory of ``pid`` and all its descendants, now: the sum of their proportional set sizes (PSS), so
    pages a forked worker still shares with its parent are counted once, not once per process."""
    kids = _children_map()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, ()))
        try:
            with open(f"/proc/{p}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600.0) -> Run:
    """Run ``cmd`` to completion; a run over ``timeout`` is killed and reported with status -9."""
    log = cwd / "last-run.log"
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.1):
                peak = max(peak, tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            done.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    rss = max(peak, usage.ru_maxrss * 1024)
    text = log.read_text(errors="replace")
    return Run(wall, usage.ru_utime + usage.ru_stime, rss / 1e6, proc.returncode, text[-2000:])


# --- peers ----------------------------------------------------------------------------------------------


@dataclass
class Peer:
    """A feed reader under test; ``work`` holds its configuration and state."""

    name: str
    work: Path = field(default=Path())
    skip: str | None = None  # why it cannot run here

    def prepare(self, urls: list[str], work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)

    def reset(self) -> None:
        """Forget all state, for a cold cycle."""

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def run(self, timeout: float) -> Run:
        cmd, env = self.command()
        return measure(cmd, cwd=self.work, env=env, timeout=timeout)


ALIASES = """[aliases]
air_defence = ['FK-3', 'HQ-22', '"Hong Qi 22"']
drones = ['CH-92A', 'CH-95', 'drone*', 'dron*', 'беспилот*']
"""
TOPICS = [
    ("serbia-china-arms", "(Serbia OR Srbija OR Србија OR Vučić) AND (China OR Kina OR Кина OR kinesk*) "
     "AND (@air_defence OR @drones OR missile* OR raket*)"),
    ("air-defence", "@air_defence"),
    ("drones", "@drones"),
    ("lithium", "lithium OR litijum OR литијум"),
    ("rio-mine", '(lithium OR litijum) NEAR/5 (mine OR rudnik)'),
    ("vucic", "Vučić OR Вучић"),
    ("brnabic-parliament", "Brnabić AND (parliament OR skupština)"),
    ("kosovo-border", "Kosovo AND (border OR granica)"),
    ("sanctions-russia", "(sanctions OR sankcije) AND (Russia OR Rusija OR Moscow OR Moskva)"),
    ("china-investment", "(China OR Kina) AND (investment OR investicije OR loan OR kredit)"),
    ("railway", 'railway OR pruga OR "high speed"'),
    ("embassy", "title:(embassy OR ambasada)"),
    ("copper-steel", "(copper OR bakar) AND (steel OR čelik)"),
    ("hungary-orban", "Orbán OR (Hungary AND election)"),
    ("floods", "flood* OR poplav*"),
    ("army-exercise", "(army OR vojska) NEAR/3 (exercise OR vežba)"),
    ("vaccine", "vaccine* OR vakcin*"),
    ("novi-sad", '"Novi Sad" AND NOT sport'),
    ("xi-visit", '"Xi Jinping" AND (visit OR poseta)'),
    ("budget-tax", "(budget OR budžet) AND (tax OR porez) AND NOT football"),
]  # fmt: skip


class WatcherPeer(Peer):
    def __init__(self) -> None:
        super().__init__("watcher")

    def prepare(self, urls: list[str], work: Path) -> None:
        super().prepare(urls, work)
        lines = [
            "[watcher]",
            f"database = {str(work / 'watcher.db')!r}",
            'log_level = "WARNING"',
            "",
            ALIASES,
        ]
        for url in urls:
            lines += ["[[feeds]]", f"url = {url!r}", ""]
        for name, query in TOPICS:
            lines += ["[[topics]]", f"name = {name!r}", f"query = {query!r}", ""]
        (work / "watcher.toml").write_text("\n".join(lines))

    def reset(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            (self.work / f"watcher.db{suffix}").unlink(missing_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        cmd = [sys.executable, "-m", "watcher", "--config", str(self.work / "watcher.toml"), "poll"]
        return cmd, {"PYTHONPATH": str(REPO)}

    def db_bytes(self) -> int:
        return sum(p.stat().st_size for s in ("", "-wal") if (p := self.work / f"watcher.db{s}").exists())


class LoopPeer(Peer):
    def __init__(self) -> None:
        super().__init__("httpx+feedparser loop")

    def prepare(self, urls: list[str], work: Path) -> None:
        super().prepare(urls, work)
        (work / "urls").write_text("\n".join(urls) + "\n")

    def reset(self) -> None:
        (self.work / "state.json").unlink(missing_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, str(BENCH / "loop_peer.py"), "urls", "state.json"], {}


class NewsboatPeer(Peer):
    def __init__(self, threads: int) -> None:
        super().__init__(f"newsboat -x reload, {threads} threads")
        self.threads = threads
        self.binary = shutil.which("newsboat") or _apt_install("newsboat", "newsboat")
        if self.binary is None:
            self.skip = "newsboat not installed (apt-get install newsboat needs root and apt)"

    def prepare(self, urls: list[str], work: Path) -> None:
        super().prepare(urls, work)
        (work / "home").mkdir(exist_ok=True)
        (work / "urls").write_text("\n".join(urls) + "\n")
        (work / "config").write_text(f"reload-threads {self.threads}\ndownload-timeout 120\n")

    def reset(self) -> None:
        for name in ("cache.db", "cache.db.lock"):
            (self.work / name).unlink(missing_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        assert self.binary is not None
        cmd = [self.binary, "-x", "reload", "-u", "urls", "-c", "cache.db", "-C", "config"]
        return cmd, {"HOME": str(self.work / "home"), "LANG": "C.UTF-8"}


class Rss2EmailPeer(Peer):
    def __init__(self, venvs: Path) -> None:
        super().__init__("rss2email run --no-send")
        self.r2e, self.skip = _venv_tool(venvs, "rss2email", "r2e")

    def prepare(self, urls: list[str], work: Path) -> None:
        super().prepare(urls, work)
        outlines = "".join(
            f'<outline type="rss" text="f{i}" xmlUrl={quoteattr(u)}/>\n' for i, u in enumerate(urls)
        )
        (work / "feeds.opml").write_text(
            f'<?xml version="1.0"?>\n<opml version="1.0"><body>\n{outlines}</body></opml>\n'
        )

    def reset(self) -> None:
        for name in ("r2e.cfg", "r2e.json"):
            (self.work / name).unlink(missing_ok=True)
        # `r2e add` once per feed costs a process start each (minutes at N=2000); opmlimport adds the same
        # feeds in one process, before the clock starts.
        assert self.r2e is not None
        base = [self.r2e, "-c", "r2e.cfg", "-d", "r2e.json"]
        subprocess.run([*base, "new", "bench@example.org"], cwd=self.work, check=True, capture_output=True)
        subprocess.run([*base, "opmlimport", "feeds.opml"], cwd=self.work, check=True, capture_output=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        assert self.r2e is not None
        return [self.r2e, "-c", "r2e.cfg", "-d", "r2e.json", "run", "--no-send"], {}


class Feed2ExecPeer(Peer):
    def __init__(self, venvs: Path) -> None:
        super().__init__("feed2exec fetch (null output)")
        self.tool, self.skip = _venv_tool(venvs, "feed2exec", "feed2exec")

    def prepare(self, urls: list[str], work: Path) -> None:
        super().prepare(urls, work)
        sections = "".join(
            f"[f{i}]\nurl = {u}\noutput = feed2exec.plugins.null\n\n" for i, u in enumerate(urls)
        )
        (work / "feed2exec.ini").write_text(sections)

    def reset(self) -> None:
        (self.work / "feed2exec.db").unlink(missing_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        assert self.tool is not None
        cmd = [self.tool, "--config", "feed2exec.ini", "--database", "feed2exec.db", "fetch"]
        return cmd, {"HOME": str(self.work)}


def _apt_install(package: str, binary: str) -> str | None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print(f"{binary} not found: installing Debian's {package} ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=True, capture_output=True,
                       timeout=600)  # fmt: skip
    except (subprocess.SubprocessError, OSError) as e:
        print(f"could not install {package}: {e}", file=sys.stderr)
        return None
    return shutil.which(binary)


def _venv_tool(venvs: Path, package: str, script: str) -> tuple[str | None, str | None]:
    """``script`` from a private virtualenv holding ``package`` (created on first use): (path, skip reason)."""
    venv = venvs / package
    tool = venv / "bin" / script
    if tool.exists():
        return str(tool), None
    print(f"installing {package} into {venv} ...", file=sys.stderr)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300
        )
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", package], check=True, capture_output=True,
                       timeout=900)  # fmt: skip
    except (subprocess.SubprocessError, OSError) as e:
        shutil.rmtree(venv, ignore_errors=True)
        return None, f"{package} could not be installed from PyPI ({type(e).__name__})"
    return (str(tool), None) if tool.exists() else (None, f"{package} installed no {script} script")
