"""The `watcher` command group and what every command shares: config loading, errors, output.

Errors become one line and an exit code.

Exit codes: 0 ok; 1 a command's own failure (e.g. a digest channel failed); 2 configuration error;
3 database error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click

from watcher import __version__
from watcher.config import DEFAULT_CONFIG, Config, Topic, load_config
from watcher.errors import ConfigError, QuerySyntaxError, StoreError, WatcherError
from watcher.models import MARK_CLOSE, MARK_OPEN
from watcher.query import Query, parse_query
from watcher.store import Store

log = logging.getLogger("watcher")


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as e:
        fail(f"{e}\nhint: `watcher --config FILE check` validates a configuration file", 2)
    except QuerySyntaxError as e:
        fail(str(e), 2)
    except StoreError as e:
        fail(str(e), 3)
    except WatcherError as e:
        fail(str(e), 1)


class Ctx:
    def __init__(self, config_path: Path, verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            with errors():
                self._config = load_config(self.config_path)
            logging.getLogger().setLevel("DEBUG" if self.verbose else self._config.watcher.log_level)
        return self._config

    @contextmanager
    def store(self) -> Iterator[Store]:
        with errors():
            store = Store(self.config.database_path)
        try:
            yield store
        finally:
            store.close()


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", envvar="WATCHER_CONFIG", default=str(DEFAULT_CONFIG), show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="Configuration file (env: WATCHER_CONFIG).",
)  # fmt: skip
@click.option("-v", "--verbose", count=True, help="Debug logging.")
@click.version_option(__version__, prog_name="watcher")
@click.pass_context
def main(ctx: click.Context, config_path: Path, verbose: int) -> None:
    """Watch news feeds for topics; alert once per story."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = Ctx(config_path, verbose)


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else None


def marked(snippet: str) -> str:
    """Matched words as **word** in JSON output: the snippet's markers are control characters."""
    return snippet.replace(MARK_OPEN, "**").replace(MARK_CLOSE, "**")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 70) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def topic_or_query(
    cfg: Config, topic: str | None, query: str | None, usage: str
) -> tuple[Topic | None, Query]:
    """The query a command runs: a configured topic's (with the topic, for its feed and language scope), or
    one written on the command line with the config's aliases. Exactly one of the two must be given."""
    if (topic is None) == (query is None):
        raise click.UsageError(usage)
    if topic is not None:
        t = cfg.topic(topic)
        if t is None:
            fail(f"no topic named {topic!r} in {cfg.path}", 2)
        return t, t.query
    assert query is not None
    with errors():
        return None, parse_query(query, cfg.file.aliases)
