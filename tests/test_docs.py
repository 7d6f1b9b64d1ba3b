"""The README documents every command and every configuration key (datasette and sqlite-utils do this)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import FeedConfig, TopicConfig, WatcherSection

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_is_documented(command: str) -> None:
    assert f"watcher {command}" in README


@pytest.mark.parametrize(
    ("section", "key"),
    [("watcher", k) for k in WatcherSection.model_fields]
    + [("feeds", k) for k in FeedConfig.model_fields]
    + [("topics", k) for k in TopicConfig.model_fields],
)
def test_every_config_key_is_documented(section: str, key: str) -> None:
    assert f"`{key}`" in README, f"[{section}] {key} is not in the README"


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help(command: str) -> None:
    assert main.commands[command].help, command
