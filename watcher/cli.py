"""The `watcher` command: a thin shell over the library. Errors become one line and an exit code.

Exit codes: 0 ok; 1 a command's own failure (e.g. a digest channel failed); 2 configuration error;
3 database error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from watcher import __version__
from watcher.config import DEFAULT_CONFIG, Config, load_config
from watcher.errors import ConfigError, QuerySyntaxError, StoreError, WatcherError
from watcher.models import MARK_CLOSE, MARK_OPEN, FeedState, HitView, PollOutcome, body_text
from watcher.store import Store

log = logging.getLogger("watcher")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as e:
        _fail(f"{e}\nhint: `watcher --config FILE check` validates a configuration file", 2)
    except QuerySyntaxError as e:
        _fail(str(e), 2)
    except StoreError as e:
        _fail(str(e), 3)
    except WatcherError as e:
        _fail(str(e), 1)


class Ctx:
    def __init__(self, config_path: Path, verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            with _errors():
                self._config = load_config(self.config_path)
            logging.getLogger().setLevel("DEBUG" if self.verbose else self._config.watcher.log_level)
        return self._config

    @contextmanager
    def store(self) -> Iterator[Store]:
        with _errors():
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


@main.command()
@pass_ctx
def check(ctx: Ctx) -> None:
    """Validate the configuration and print a summary."""
    cfg = ctx.config
    click.echo(f"{cfg.path}: ok")
    click.echo(f"  database: {cfg.database_path}")
    click.echo(f"  feeds: {len(cfg.feeds)}")
    for f in cfg.feeds:
        tags = f" [{', '.join(f.tags)}]" if f.tags else ""
        click.echo(f"    - {f.name or '(feed title)'}: {f.url}{tags}")
    click.echo(f"  topics: {len(cfg.topics)}")
    for t in cfg.topics:
        channels = ", ".join(t.config.channels) or "no channels"
        click.echo(
            f"    - {t.name}: {t.config.query}  -> {channels}, {t.config.digest} ({t.config.timezone})"
        )
    click.echo(f"  channels: {', '.join(f'{n} ({c.type})' for n, c in cfg.file.channels.items()) or 'none'}")


@main.command()
@pass_ctx
def poll(ctx: Ctx) -> None:
    """Poll every configured feed once now, store items and hits."""
    from watcher.fetch import Fetcher
    from watcher.pipeline import Runtime, poll_all, sync_feeds

    cfg = ctx.config

    async def go(store: Store) -> list[PollOutcome]:
        w = cfg.watcher
        async with Fetcher(max_connections=w.concurrency, per_host=w.per_host, user_agent=w.user_agent) as f:
            rt = Runtime(config=cfg, store=store, fetcher=f)
            sync_feeds(rt)
            return await poll_all(rt)

    with ctx.store() as store:
        outcomes = asyncio.run(go(store))
    for o in outcomes:
        detail = f"{o.new_items} new, {o.updated_items} updated, {o.new_hits} hits" if o.parsed else ""
        click.echo(f"{o.status.value:<13} {o.url}  {o.error or detail}")
    failed = sum(o.error is not None for o in outcomes)
    click.echo(
        f"polled {len(outcomes)} feeds: {sum(o.new_items for o in outcomes)} new items, "
        f"{sum(o.new_hits for o in outcomes)} new hits, {failed} failed"
    )


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else None


def _marked(snippet: str) -> str:
    """Matched words as **word** in JSON output: the snippet's markers are control characters."""
    return snippet.replace(MARK_OPEN, "**").replace(MARK_CLOSE, "**")


def hit_json(h: HitView) -> dict[str, Any]:
    return {
        "topic": h.topic,
        "title": h.title,
        "url": h.url,
        "feed": h.feed,
        "guid": h.guid,
        "published": _iso(h.published),
        "first_seen": _iso(h.first_seen),
        "story": h.story,
        "backlog": h.backlog,
        "terms": list(h.terms),
        "snippet": _marked(h.snippet),
        "also_seen": [
            {
                "feed": c["feed"],
                "url": c["url"],
                "guid": c["guid"],
                "reason": c.get("reason"),
                "score": c.get("score"),
                "published": c.get("published"),
            }
            for c in h.also_seen
        ],
    }


@main.command()
@click.option("--topic", help="Only this topic's hits.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--include-backlog/--no-backlog", default=True, show_default=True, help="Show first-poll backlog."
)
@pass_ctx
def hits(ctx: Ctx, topic: str | None, fmt: str, include_backlog: bool) -> None:
    """List hits: one per (topic, story), with the other outlets that carried the story."""
    with ctx.store() as store:
        rows = [h for h in store.hits(topic=topic) if include_backlog or not h.backlog]
    if fmt == "json":
        for h in rows:
            click.echo(json.dumps(hit_json(h), ensure_ascii=False))
        return
    _table(
        ["seen", "topic", "feed", "title", "also", ""],
        [
            [
                h.first_seen.strftime("%Y-%m-%d %H:%M"), h.topic, h.feed, h.title,
                str(len(h.also_seen)) if h.also_seen else "", "backlog" if h.backlog else "",
            ]
            for h in rows
        ],
    )  # fmt: skip


def feed_json(s: FeedState, name: str | None) -> dict[str, Any]:
    return {
        "url": s.url,
        "name": name or s.name or s.title,
        "status": s.status.value,
        "last_error": s.last_error,
        "last_polled": _iso(s.last_polled),
        "last_success": _iso(s.last_success),
        "next_poll": _iso(s.next_poll),
        "failures": s.failures,
        "items": s.items,
        "title": s.title,
    }


@main.group(invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def feeds(click_ctx: click.Context, fmt: str) -> None:
    """Show every configured feed's health."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Ctx = click_ctx.obj
    cfg = ctx.config
    with ctx.store() as store:
        states = {s.url: s for s in store.feed_states(with_counts=True)}
    rows = [feed_json(states.get(f.url) or FeedState(url=f.url), f.name) for f in cfg.feeds]
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
        return
    _table(
        ["status", "name", "items", "fails", "last polled", "error / url"],
        [
            [
                r["status"], str(r["name"] or ""), str(r["items"]), str(r["failures"]),
                (r["last_polled"] or "")[:16], r["last_error"] or r["url"],
            ]
            for r in rows
        ],
    )  # fmt: skip


@main.command()
@click.option("--tick", default=5.0, show_default=True, help="Seconds between checks for due feeds.")
@click.option("--grace", default=10.0, show_default=True, help="Seconds in-flight polls get after SIGTERM.")
@pass_ctx
def run(ctx: Ctx, tick: float, grace: float) -> None:
    """Run the daemon: poll feeds on schedule and send digests, until SIGINT/SIGTERM."""
    from watcher.daemon import Daemon

    daemon = Daemon(ctx.config, tick=tick, grace=grace)
    with _errors():
        asyncio.run(daemon.run())


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 70) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@main.command("match")
@click.argument("query")
@click.option("--text", "text", help="The text to test.")
@click.option("--title", default="", help="A title to test (title: terms only look here).")
@click.option("--file", "file", type=click.File("r", encoding="utf-8"), help="Read the text from a file.")
@pass_ctx
def match_cmd(ctx: Ctx, query: str, text: str | None, title: str, file: Any) -> None:
    """Show whether QUERY matches a text, and why (which terms, where). Uses the config's aliases if any."""
    from watcher.match import explain, prepare
    from watcher.query import parse_query

    aliases: dict[str, tuple[str, ...]] = {}
    if ctx.config_path.exists():
        aliases = ctx.config.file.aliases
    if file is not None:
        text = file.read()
    if text is None and not title:
        raise click.UsageError("give --text, --title or --file")
    with _errors():
        q = parse_query(query, aliases)
    result = explain(q, prepare(title, text or ""))
    click.echo(result.format())
    sys.exit(0 if result.matched else 1)


@main.command()
@click.option("--topic", help="A configured topic's query.")
@click.option("--query", "query_text", help="A query to try out instead.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
def backtest(ctx: Ctx, topic: str | None, query_text: str | None, fmt: str) -> None:
    """Run a query over every stored item: what it would have matched, with counts per feed."""
    from watcher.match import TopicIndex, prepare
    from watcher.query import parse_query

    cfg = ctx.config
    if (topic is None) == (query_text is None):
        raise click.UsageError("give exactly one of --topic or --query")
    feed_urls: list[str] | None = None
    wanted = None
    if topic is not None:
        t = cfg.topic(topic)
        if t is None:
            _fail(f"no topic named {topic!r} in {cfg.path}", 2)
        q = t.query
        feed_urls = [f.url for f in cfg.feeds if t.wants_feed(f)]
        wanted = t
    else:
        assert query_text is not None
        with _errors():
            q = parse_query(query_text, cfg.file.aliases)
    index = TopicIndex([("q", q)])
    per_feed: dict[str, int] = {}
    total = 0
    with ctx.store() as store:
        for row in store.iter_items(feed_urls):
            total += 1
            m = index.match(prepare(row["title"], body_text(row["summary"], row["content"]))).get("q")
            if m is None or (wanted is not None and not wanted.wants_language(row["language"])):
                continue
            feed = row["feed_name"] or row["feed_url"]
            per_feed[feed] = per_feed.get(feed, 0) + 1
            if fmt == "json":
                out = {"feed": feed, "title": row["title"], "url": row["link"], "guid": row["guid"],
                       "published": row["published"], "terms": list(m.terms),
                       "snippet": _marked(m.snippet)}  # fmt: skip
                click.echo(json.dumps(out, ensure_ascii=False))
            else:
                click.echo(f"{(row['published'] or row['first_seen'])[:16]}  {feed}  {row['title'][:90]}")
    if fmt == "table":
        click.echo(f"\n{sum(per_feed.values())} of {total} stored items match")
        for feed, n in sorted(per_feed.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {n:6d}  {feed}")


@main.command()
@click.option("--topic", help="Only this topic.")
@click.option("--channel", help="Only this channel.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent now, exactly as it would be sent.")
@pass_ctx
def digest(ctx: Ctx, topic: str | None, channel: str | None, dry_run: bool) -> None:
    """Send every pending digest now, regardless of schedule (or render it with --dry-run)."""
    from watcher.alerts import deliver

    cfg = ctx.config
    if topic is not None and cfg.topic(topic) is None:
        _fail(f"no topic named {topic!r} in {cfg.path}", 2)
    if channel is not None and channel not in cfg.file.channels:
        _fail(f"no channel named {channel!r} in {cfg.path}", 2)
    with ctx.store() as store:
        reports = asyncio.run(
            deliver(cfg, store, datetime.now(UTC), topic=topic, channel=channel, force=True, dry_run=dry_run)
        )
    if not reports:
        click.echo("nothing pending")
    failed = 0
    for r in reports:
        if dry_run:
            click.echo(f"=== topic {r.topic} -> channel {r.channel}: {r.stories} stories ({r.hits} hits)")
            click.echo(r.rendered or "")
        elif r.ok:
            click.echo(f"sent: topic {r.topic} -> channel {r.channel}: {r.stories} stories")
        else:
            failed += 1
            click.echo(
                f"FAILED: topic {r.topic} -> channel {r.channel}: {r.error} (hits stay pending)", err=True
            )
    if failed:
        sys.exit(1)


@main.command()
@click.option("--status", type=click.Choice(["pending", "sent", "failed"]), help="Only this status.")
@click.option("--topic", help="Only this topic.")
@click.option("--channel", help="Only this channel.")
@click.option("--retry", is_flag=True, help="Put failed deliveries back in the queue.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
def deliveries(
    ctx: Ctx, status: str | None, topic: str | None, channel: str | None, retry: bool, fmt: str
) -> None:
    """Every (hit, channel) delivery with its status, attempts and last error."""
    from watcher.store.deliveries import list_deliveries, retry_failed

    with ctx.store() as store:
        if retry:
            click.echo(f"{retry_failed(store, topic=topic, channel=channel)} failed deliveries queued again")
            return
        rows = list_deliveries(store, status=status, topic=topic, channel=channel)
    if fmt == "json":
        for d in rows:
            click.echo(json.dumps({
                "topic": d.topic, "story": d.story, "channel": d.channel, "status": d.status,
                "attempts": d.attempts, "last_error": d.last_error, "sent_at": _iso(d.sent_at),
                "next_attempt": _iso(d.next_attempt), "hit": d.hit_id,
            }, ensure_ascii=False))  # fmt: skip
        return
    _table(
        ["status", "topic", "channel", "story", "tries", "sent / error"],
        [[d.status, d.topic, d.channel, d.story, str(d.attempts), _iso(d.sent_at) or d.last_error or ""]
         for d in rows],
    )  # fmt: skip


@main.command()
@click.option("--max-age", default="1h", show_default=True, help="Oldest acceptable last poll cycle.")
@pass_ctx
def health(ctx: Ctx, max_age: str) -> None:
    """Exit 0 when the database is writable and the daemon's last poll cycle is recent (Docker HEALTHCHECK)."""
    from watcher.store import parse_ts, ts
    from watcher.units import parse_duration

    limit = parse_duration(max_age)
    now = datetime.now(UTC)
    with ctx.store() as store:
        with store.transaction():
            store.set_state("health_probe", ts(now) or "")
        last = parse_ts(store.get_state("last_tick")) or parse_ts(store.get_state("last_cycle"))
    if last is None or (now - last).total_seconds() > limit:
        _fail(f"unhealthy: last poll cycle {_iso(last) or 'never'}", 1)
    click.echo(f"ok: last poll cycle {_iso(last)}")
