"""Each I/O boundary has one owner, and adapters never import each other (see the README's module table)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "watcher"
MODULES = sorted(p for p in PKG.rglob("*.py"))

# library -> the only modules allowed to import it
OWNERS = {
    "sqlite3": ("watcher/store/",),
    "sqlite_utils": ("watcher/store/",),
    "feedparser": ("watcher/parse.py",),
    "fastfeedparser": ("watcher/parse.py", "watcher/fastparse.py"),
    "httpx": ("watcher/fetch.py", "watcher/http1.py", "watcher/netguard.py", "watcher/notify/"),
    "smtplib": ("watcher/notify/email.py",),
    "apscheduler": ("watcher/daemon.py", "watcher/schedule.py"),
    "click": ("watcher/cli/",),
}
# adapters: none of these may import another of them
ADAPTERS = ("watcher.fetch", "watcher.parse", "watcher.store", "watcher.notify")
PURE = ("watcher.text", "watcher.query", "watcher.match", "watcher.urls", "watcher.policy", "watcher.units",
        "watcher.dedup", "watcher.fingerprint", "watcher.models", "watcher.errors", "watcher.digest",
        "watcher.ftsquery", "watcher.explain", "watcher.topicindex")  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _rel(path: Path) -> str:
    return path.relative_to(PKG.parent).as_posix()


def _module(path: Path) -> str:
    return _rel(path).removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_libraries_only_in_their_owner(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if top in OWNERS:
            assert _rel(path).startswith(OWNERS[top]), f"{_rel(path)} imports {name}: only {OWNERS[top]} may"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_adapters_do_not_import_each_other(path: Path) -> None:
    me = _module(path)
    mine = next((a for a in ADAPTERS if me == a or me.startswith(a + ".")), None)
    if mine is None:
        return
    for name in _imports(path):
        other = next((a for a in ADAPTERS if name == a or name.startswith(a + ".")), None)
        assert other in (None, mine), f"{me} imports {name}"


@pytest.mark.parametrize("path", [p for p in MODULES if _module(p) in PURE], ids=_rel)
def test_pure_modules_do_no_io(path: Path) -> None:
    banned = {"sqlite3", "sqlite_utils", "httpx", "smtplib", "socket", "feedparser", "apscheduler", "click"}
    for name in _imports(path):
        assert name.split(".")[0] not in banned, f"{_rel(path)} imports {name}"
        assert not name.startswith(
            ("watcher.store", "watcher.fetch", "watcher.notify", "watcher.pipeline")
        ), name
