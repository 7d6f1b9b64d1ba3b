"""Load and validate the TOML configuration into one frozen, typed `Config`.

The whole file is rejected on any error, before anything starts: a half-configured daemon that silently
skips a bad topic is worse than one that refuses to start. Every error names the file, the key path
(`topics[2].query`) and the bad value. Secrets are only ever taken from `${ENV_VARS}` inside values.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from watcher.channels import ChannelConfig
from watcher.errors import ConfigError, QuerySyntaxError
from watcher.models import USER_AGENT, FetchSettings
from watcher.query import Query, parse_query
from watcher.units import parse_duration, parse_size
from watcher.urls import canonical_url

DEFAULT_CONFIG = Path("config/watcher.toml")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _duration(v: object) -> float:
    if isinstance(v, str | int | float) and not isinstance(v, bool):
        return parse_duration(v)
    raise ValueError("expected a duration such as '30s', '15m', '24h'")


def _size(v: object) -> int:
    if isinstance(v, str | int) and not isinstance(v, bool):
        return parse_size(v)
    raise ValueError("expected a size such as '512KB', '10MB'")


def _check_schedule(v: str) -> str:
    # watcher.schedule pulls in APScheduler's cron machinery (~35 ms): only a file that sets a schedule pays.
    from watcher.schedule import check_schedule

    return check_schedule(v)


def _check_timezone(v: str) -> str:
    from watcher.schedule import check_timezone

    return check_timezone(v)


Duration = Annotated[float, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WatcherSection(_Strict):
    database: str = "data/watcher.db"
    interval: Duration = 900.0  # default poll interval of a feed
    first_poll_window: Duration = 86400.0
    fetch_timeout: Duration = 30.0
    max_feed_size: Size = 10_000_000
    max_redirects: int = Field(5, ge=0, le=30)
    max_items: int = Field(1000, ge=1)
    allow_private_addresses: bool = False
    concurrency: int = Field(32, ge=1, le=512)
    per_host: int = Field(4, ge=1, le=64)
    unconditional_every: Duration = 6 * 3600.0  # defeat servers whose validators lie
    max_backoff: Duration = 86400.0
    dedup_window: Duration = 14 * 86400.0
    delivery_attempts: int = Field(
        8, ge=1, le=100
    )  # failed sends of one digest before it is parked as failed
    user_agent: str = USER_AGENT
    log_level: str = "INFO"
    retention: Duration | None = None  # prune items first seen longer ago than this; None keeps everything
    full_text: bool = False  # fetch each new item's article page and match its extracted text
    full_text_max: int = Field(50, ge=1, le=1000)  # article pages fetched per feed per poll

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return v.upper()

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: float | None) -> float | None:
        if v is not None and v < 86400:
            raise ValueError("must be at least '1d': a shorter retention would prune items as they arrive")
        return v


class FeedConfig(_Strict):
    url: str
    name: str | None = None
    interval: Duration | None = None
    tags: tuple[str, ...] = ()
    fetch_timeout: Duration | None = None
    max_feed_size: Size | None = None
    max_redirects: int | None = Field(None, ge=0, le=30)
    max_items: int | None = Field(None, ge=1)
    allow_private_addresses: bool | None = None
    enabled: bool = True
    full_text: bool | None = None
    full_text_max: int | None = Field(None, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v.strip()


class TopicConfig(_Strict):
    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    feeds: tuple[str, ...] = ()  # feed names, URLs or "tag:NAME"; empty = every feed
    languages: tuple[str, ...] = ()  # item languages ("sr", "en"); empty = any
    channels: tuple[str, ...] = ()
    digest: str = "immediate"
    timezone: str = "UTC"
    heartbeat: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("use letters, digits, '-', '_' and '.' only (it appears in URLs and file names)")
        return v

    _digest = field_validator("digest")(_check_schedule)
    _timezone = field_validator("timezone")(_check_timezone)


class ServeSection(_Strict):
    """`[serve]`: the HTTP endpoints (Atom per topic, /healthz, /metrics), also run by the daemon when enabled."""

    enabled: bool = False  # whether `watcher run` serves too; `watcher serve` always does
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    base_url: str | None = None  # absolute links in Atom feeds when behind a proxy; else the request's
    health_max_age: Duration = 3600.0  # /healthz fails when the last poll cycle is older than this

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/") if v else v


class OpmlSource(_Strict):
    """An OPML file whose feeds are configured as if listed under [[feeds]] (path relative to the config)."""

    path: str = Field(min_length=1)
    tags: tuple[str, ...] = ()  # added to every feed of the file


class ConfigFile(_Strict):
    watcher: WatcherSection = WatcherSection()
    serve: ServeSection = ServeSection()
    aliases: dict[str, tuple[str, ...]] = {}
    feeds: tuple[FeedConfig, ...] = ()
    topics: tuple[TopicConfig, ...] = ()
    channels: dict[str, ChannelConfig] = {}
    opml: tuple[OpmlSource, ...] = ()  # OPML subscription lists whose feeds join `feeds`


@dataclass(frozen=True, slots=True)
class Topic:
    """A validated topic with its compiled query."""

    config: TopicConfig
    query: Query

    @property
    def name(self) -> str:
        return self.config.name

    def wants_feed(self, feed: FeedConfig) -> bool:
        if not self.config.feeds:
            return True
        for ref in self.config.feeds:
            if ref.startswith("tag:"):
                if ref[4:] in feed.tags:
                    return True
            elif ref in (feed.name, feed.url):
                return True
        return False

    def wants_language(self, language: str | None) -> bool:
        if not self.config.languages or language is None:
            return True  # an item without a language is not excluded: better a hit than a silent miss
        primary = language.lower().split("-")[0]
        return any(primary == lang.lower().split("-")[0] for lang in self.config.languages)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    file: ConfigFile
    topics: tuple[Topic, ...]

    @property
    def watcher(self) -> WatcherSection:
        return self.file.watcher

    @property
    def serve(self) -> ServeSection:
        return self.file.serve

    @property
    def feeds(self) -> tuple[FeedConfig, ...]:
        return tuple(f for f in self.file.feeds if f.enabled)

    @property
    def database_path(self) -> Path:
        """Relative database paths are taken from the working directory, as users expect from a CLI."""
        return Path(self.watcher.database)

    def feed_interval(self, feed: FeedConfig) -> float:
        return feed.interval if feed.interval is not None else self.watcher.interval

    def fetch_settings(self, feed: FeedConfig) -> FetchSettings:
        w = self.watcher
        return FetchSettings(
            timeout=feed.fetch_timeout if feed.fetch_timeout is not None else w.fetch_timeout,
            max_bytes=feed.max_feed_size if feed.max_feed_size is not None else w.max_feed_size,
            max_redirects=feed.max_redirects if feed.max_redirects is not None else w.max_redirects,
            allow_private=(
                feed.allow_private_addresses
                if feed.allow_private_addresses is not None
                else w.allow_private_addresses
            ),
            user_agent=w.user_agent,
        )

    def max_items(self, feed: FeedConfig) -> int:
        return feed.max_items if feed.max_items is not None else self.watcher.max_items

    def full_text(self, feed: FeedConfig) -> bool:
        return feed.full_text if feed.full_text is not None else self.watcher.full_text

    def full_text_max(self, feed: FeedConfig) -> int:
        return feed.full_text_max if feed.full_text_max is not None else self.watcher.full_text_max

    def feed_by_url(self, url: str) -> FeedConfig | None:
        return next((f for f in self.file.feeds if f.url == url), None)

    def topic(self, name: str) -> Topic | None:
        return next((t for t in self.topics if t.name == name), None)


def expand_env(value: Any, key_path: str, path: str, environ: Mapping[str, str]) -> Any:
    """Replace `${NAME}` (or `${NAME:-default}`) in every string; an unset variable is an error."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(path, key_path, f"environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: expand_env(v, f"{key_path}.{k}" if key_path else k, path, environ) for k, v in value.items()
        }
    if isinstance(value, list):
        return [expand_env(v, f"{key_path}[{i}]", path, environ) for i, v in enumerate(value)]
    return value


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before", "function-plain"} or "[" in str(part):
            continue  # pydantic's internal step names for validators and tagged unions
        else:
            out += f".{part}" if out else str(part)
    return out


def _lookup(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand, validate and compile. Raises ConfigError listing every problem found."""
    p = Path(path)
    env = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(p), "", "file not found (pass --config FILE or set WATCHER_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(p), "", f"cannot read: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), "", f"not valid TOML: {e}") from e
    data = expand_env(raw, "", str(p), env)
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            value = _lookup(data, loc)
            shown = f" (got {value!r})" if value is not None and not isinstance(value, dict | list) else ""
            problems.append(f"{_key_path(loc) or '(top level)'}: {msg}{shown}")
        first_loc = _key_path(tuple(e.errors()[0]["loc"]))
        raise ConfigError(
            str(p),
            first_loc,
            "\n  ".join(problems)
            if len(problems) == 1
            else "invalid configuration:\n  " + "\n  ".join(problems),
        ) from None
    return _cross_check(p, _with_opml_feeds(p, file))


def _with_opml_feeds(p: Path, file: ConfigFile) -> ConfigFile:
    """`feeds` plus the feeds of each [[opml]] file, validated like [[feeds]] tables. A feed listed under
    [[feeds]] wins over the same feed (by canonical URL) in an OPML file, so one feed of a list can be tuned."""
    if not file.opml:
        return file
    # listparser (and the requests stack under it) costs ~80 ms of start-up: only a file with [[opml]] pays.
    from watcher.opml import NOT_HTTP, OpmlError, load_opml

    known = {canonical_url(f.url) for f in file.feeds}
    extra: list[FeedConfig] = []
    for i, src in enumerate(file.opml):
        where = p.parent / src.path
        try:
            subs = load_opml(where)
        except OpmlError as e:
            raise ConfigError(str(p), f"opml[{i}].path", str(e)) from None
        bad = next((s for s in subs.skipped if s.reason == NOT_HTTP), None)
        if bad is not None:
            raise ConfigError(str(p), f"opml[{i}]", f"{where}: outline {bad.title!r}: {bad.reason}", bad.url)
        for feed in subs.feeds:
            if canonical_url(feed.url) in known:
                continue
            known.add(canonical_url(feed.url))
            tags = tuple(dict.fromkeys((*feed.tags, *src.tags)))
            try:
                extra.append(FeedConfig(url=feed.url, name=feed.name, tags=tags))
            except ValidationError as e:
                msg = e.errors()[0]["msg"].removeprefix("Value error, ")
                raise ConfigError(str(p), f"opml[{i}]", f"{where}: feed {feed.url!r}: {msg}") from None
    return file.model_copy(update={"feeds": file.feeds + tuple(extra)}) if extra else file


def _cross_check(p: Path, file: ConfigFile) -> Config:
    """Checks that span sections: duplicates, references between topics, feeds and channels, queries."""
    path = str(p)
    seen_urls: dict[str, int] = {}
    names: set[str] = set()
    tags: set[str] = set()
    for i, f in enumerate(file.feeds):
        if f.url in seen_urls:
            raise ConfigError(path, f"feeds[{i}].url", f"duplicate of feeds[{seen_urls[f.url]}]", f.url)
        seen_urls[f.url] = i
        if f.name:
            names.add(f.name)
        tags.update(f.tags)
    for name, fragments in file.aliases.items():
        for j, fragment in enumerate(fragments):
            try:
                parse_query(fragment)
            except QuerySyntaxError as e:
                raise ConfigError(path, f"aliases.{name}[{j}]", str(e)) from None
    topics = []
    seen_topics: set[str] = set()
    for i, t in enumerate(file.topics):
        if t.name in seen_topics:
            raise ConfigError(path, f"topics[{i}].name", "duplicate topic name", t.name)
        seen_topics.add(t.name)
        try:
            q = parse_query(t.query, file.aliases)
        except QuerySyntaxError as e:
            raise ConfigError(path, f"topics[{i}].query", str(e)) from None
        for ref in t.feeds:
            known = tags if ref.startswith("tag:") else names | set(seen_urls)
            key = ref[4:] if ref.startswith("tag:") else ref
            if key not in known:
                raise ConfigError(path, f"topics[{i}].feeds", "names no configured feed or tag", ref)
        for ch in t.channels:
            if ch not in file.channels:
                raise ConfigError(path, f"topics[{i}].channels", "names no [channels.NAME] section", ch)
        topics.append(Topic(config=t, query=q))
    return Config(path=p, file=file, topics=tuple(topics))
