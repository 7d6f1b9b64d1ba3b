from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher.cli import main
from watcher.config import load_config
from watcher.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = """
[watcher]
database = "{db}"
[[feeds]]
url = "http://127.0.0.1:1/feed.xml"
name = "Local"
tags = ["balkans"]
[[topics]]
name = "t"
query = 'Serbia AND drone*'
"""

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    def write(text: str) -> Path:
        p = tmp_path / "watcher.toml"
        p.write_text(text.replace("{db}", str(tmp_path / "w.db")), encoding="utf-8")
        return p

    return write


def test_bundled_default_config_is_valid() -> None:
    cfg = load_config(ROOT / "config" / "watcher.toml", environ={})
    assert cfg.feeds, "the default config must watch real feeds"
    assert cfg.topic("serbia-china-arms") is not None
    assert all(t.config.channels for t in cfg.topics)


def test_minimal_config_defaults(write_config: WriteConfig) -> None:
    cfg = load_config(write_config(MINIMAL), environ={})
    assert cfg.watcher.interval == 900
    assert cfg.watcher.first_poll_window == 86400
    feed = cfg.feeds[0]
    s = cfg.fetch_settings(feed)
    assert (s.timeout, s.max_bytes, s.max_redirects, s.allow_private) == (30.0, 10_000_000, 5, False)
    assert cfg.max_items(feed) == 1000


def test_per_feed_overrides(write_config: WriteConfig) -> None:
    text = MINIMAL.replace(
        'tags = ["balkans"]',
        'tags = ["balkans"]\nfetch_timeout = "5s"\nmax_feed_size = "1MB"\n'
        'max_redirects = 2\nmax_items = 10\nallow_private_addresses = true\ninterval = "2m"',
    )
    cfg = load_config(write_config(text), environ={})
    feed = cfg.feeds[0]
    s = cfg.fetch_settings(feed)
    assert (s.timeout, s.max_bytes, s.max_redirects, s.allow_private) == (5.0, 1_000_000, 2, True)
    assert cfg.max_items(feed) == 10
    assert cfg.feed_interval(feed) == 120


@pytest.mark.parametrize(
    ("edit", "key_path", "fragment"),
    [
        (('database = "{db}"', 'database = "{db}"\ninterval = "often"'), "watcher.interval", "'often'"),
        (('database = "{db}"', 'database = "{db}"\nmax_feed_size = "huge"'), "watcher.max_feed_size", "huge"),
        (('database = "{db}"', 'database = "{db}"\nfrobnicate = 1'), "watcher.frobnicate", "Extra inputs"),
        (('url = "http://127.0.0.1:1/feed.xml"', 'url = "ftp://example.org/x"'), "feeds[0].url", "ftp://"),
        (("query = 'Serbia AND drone*'", "query = '(Serbia AND drone*'"), "topics[0].query", "column"),
        (("query = 'Serbia AND drone*'", "query = 'Serbia AND @nope'"), "topics[0].query", "nope"),
        (('name = "t"', 'name = "t"\nchannels = ["desk"]'), "topics[0].channels", "desk"),
        (('name = "t"', 'name = "t"\nfeeds = ["tag:nothing"]'), "topics[0].feeds", "tag:nothing"),
        (('name = "t"', 'name = "t"\ntimezone = "Mars/Olympus"'), "topics[0].timezone", "Mars/Olympus"),
        (('name = "t"', 'name = "t"\ndigest = "sometimes"'), "topics[0].digest", "sometimes"),
        (('name = "t"', 'name = "has space"'), "topics[0].name", "has space"),
    ],
)
def test_errors_name_file_key_and_value(
    write_config: WriteConfig, edit: tuple[str, str], key_path: str, fragment: str
) -> None:
    path = write_config(MINIMAL.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert str(path) in message
    assert key_path in message
    assert fragment in message


def test_query_error_draws_a_caret(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL.replace("query = 'Serbia AND drone*'", "query = 'Serbia AND (drone* OR x'"))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "^" in str(info.value)


def test_duplicate_feed_and_topic(write_config: WriteConfig) -> None:
    dup_feed = MINIMAL + '\n[[feeds]]\nurl = "http://127.0.0.1:1/feed.xml"\n'
    with pytest.raises(ConfigError, match=r"feeds\[1\]\.url"):
        load_config(write_config(dup_feed), environ={})
    dup_topic = MINIMAL + "\n[[topics]]\nname = \"t\"\nquery = 'x'\n"
    with pytest.raises(ConfigError, match=r"topics\[1\]\.name"):
        load_config(write_config(dup_topic), environ={})


def test_env_expansion(write_config: WriteConfig) -> None:
    text = MINIMAL.replace('name = "Local"', 'name = "${FEED_NAME}"').replace(
        'tags = ["balkans"]', 'tags = ["${TAG:-balkans}"]'
    )
    cfg = load_config(write_config(text), environ={"FEED_NAME": "From env"})
    assert cfg.feeds[0].name == "From env"
    assert cfg.feeds[0].tags == ("balkans",)
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.name: environment variable FEED_NAME is not set"):
        load_config(write_config(text), environ={})


def test_invalid_toml_and_missing_file(write_config: WriteConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_config("[watcher\n"), environ={})
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml", environ={})


def test_topic_feed_and_language_filters(write_config: WriteConfig) -> None:
    text = MINIMAL.replace('name = "t"', 'name = "t"\nfeeds = ["tag:balkans"]\nlanguages = ["sr"]')
    text += '\n[[feeds]]\nurl = "http://127.0.0.1:1/other.xml"\nname = "Other"\n'
    cfg = load_config(write_config(text), environ={})
    topic = cfg.topics[0]
    local, other = cfg.feeds
    assert topic.wants_feed(local) and not topic.wants_feed(other)
    assert topic.wants_language("sr-Latn") and topic.wants_language(None) and not topic.wants_language("en")


def test_cli_check_ok_and_failure(write_config: WriteConfig) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["--config", str(write_config(MINIMAL)), "check"])
    assert ok.exit_code == 0, ok.output
    assert "topics: 1" in ok.output
    bad = runner.invoke(
        main, ["--config", str(write_config(MINIMAL.replace("drone*'", "drone* AND'"))), "check"]
    )
    assert bad.exit_code == 2
    assert "topics[0].query" in bad.output
