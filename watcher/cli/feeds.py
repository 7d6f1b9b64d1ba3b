"""The feeds group: every configured feed's health; feeds in (OPML import, discovery) and out (OPML export)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from watcher.cli.base import Ctx, errors, fail, iso, main, pass_ctx, table
from watcher.config import Config, FeedConfig

# Every command imports every command module, so these modules load only in the commands that use them:
# health brings the digest renderer (jinja2), opml brings listparser and the requests stack.
if TYPE_CHECKING:
    from watcher.discover import Discovery
    from watcher.health import FeedReport
    from watcher.opml import FeedEntry


def feed_json(r: FeedReport, name: str | None) -> dict[str, Any]:
    s = r.state
    return {
        "url": s.url,
        "name": name or s.name or s.title,
        "status": s.status.value,
        "last_error": s.last_error,
        "last_polled": iso(s.last_polled),
        "last_success": iso(s.last_success),
        "next_poll": iso(s.next_poll),
        "failures": s.failures,
        "items": s.items,
        "title": s.title,
        "health": r.verdict.kind,
        "problem": r.verdict.words,
        "items_per_day": r.items_per_day,
        "recent_items": r.recent_items,
        "usual_gap": round(r.usual_gap) if r.usual_gap is not None else None,
        "last_new_item": iso(s.last_new_item),
    }


@main.group(invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def feeds(click_ctx: click.Context, fmt: str) -> None:
    """Show every configured feed's health (subcommands: add, import, export)."""
    from watcher.health import feed_reports

    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Ctx = click_ctx.obj
    cfg = ctx.config
    with ctx.store() as store:
        reports = feed_reports(store, [f.url for f in cfg.feeds], datetime.now(UTC))
    rows = [feed_json(r, f.name) for r, f in zip(reports, cfg.feeds, strict=True)]
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    table(
        ["health", "name", "items/day", "last success", "problem / url"],
        [
            [
                r["health"], str(r["name"] or ""),
                "" if r["items_per_day"] is None else f"{r['items_per_day']:g}",
                (r["last_success"] or "never")[:16], r["problem"] or r["url"],
            ]
            for r in rows
        ],
        max_width=90,
    )  # fmt: skip


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _describe(entry: FeedEntry) -> str:
    tags = f"  [{', '.join(entry.tags)}]" if entry.tags else ""
    return f"{entry.url}{'  ' + repr(entry.name) if entry.name else ''}{tags}"


@feeds.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tag", "tags", multiple=True, help="Also give every imported feed this tag (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be added; change nothing.")
@pass_ctx
def import_(ctx: Ctx, file: Path, tags: tuple[str, ...], dry_run: bool) -> None:
    """Add the feeds of an OPML file to the configuration file (folders become tags)."""
    from watcher.feedfile import append_feeds, plan
    from watcher.opml import FeedEntry, load_opml

    cfg = ctx.config
    with errors():
        subs = load_opml(file)
        entries = [
            FeedEntry(url=e.url, name=e.name, tags=tuple(dict.fromkeys((*e.tags, *tags)))) for e in subs.feeds
        ]
        todo = plan(cfg, entries)
        for entry in todo.add:
            click.echo(f"{'would add' if dry_run else 'add'}  {_describe(entry)}")
        for entry, why in todo.skip:
            click.echo(f"skip  {entry.url}  ({why})")
        for s in subs.skipped:
            click.echo(f"skip  {s.url or repr(s.title)}  ({s.reason})")
        if not dry_run:
            append_feeds(
                cfg.path,
                todo.add,
                comment=f"Imported from {file.name} by `watcher feeds import` on {_today()}",
            )
    skipped = len(todo.skip) + len(subs.skipped)
    verb = "would be added to" if dry_run else "added to"
    click.echo(f"{len(todo.add)} feeds {verb} {cfg.path}, {skipped} skipped")


@feeds.command("export")
@click.option("--format", "fmt", type=click.Choice(["opml"]), default="opml", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout."
)
@pass_ctx
def export(ctx: Ctx, fmt: str, output: Path | None) -> None:
    """Write every enabled feed, with its name and tags (as folders), as an OPML 2.0 subscription list."""
    from watcher.opml import FeedEntry, write_opml

    cfg = ctx.config
    titles: dict[str, str | None] = {}
    if cfg.database_path.exists():  # feed titles name unnamed feeds; exporting never creates a database
        with ctx.store() as store:
            titles = {s.url: s.title for s in store.feed_states()}
    entries = [FeedEntry(url=f.url, name=f.name or titles.get(f.url), tags=f.tags) for f in cfg.feeds]
    data = write_opml(entries, title=f"Watcher feeds ({cfg.path.name})", created=datetime.now(UTC))
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)  # OPML carries its own encoding declaration: bytes, not text
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as e:
        fail(f"{output}: cannot write: {e.strerror or e}", 1)
    click.echo(f"wrote {len(entries)} feeds to {output}", err=True)


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="The feed's name in hits and digests (default: the feed's own title).")
@click.option("--tag", "tags", multiple=True, help="Give the feed this tag (repeatable).")
@click.option("-y", "--yes", is_flag=True, help="Add the first feed found without asking.")
@click.option("--pick", type=click.IntRange(min=1), help="Add the Nth feed found (as numbered in the list).")
@click.option("--dry-run", is_flag=True, help="Show what was found; change nothing.")
@pass_ctx
def add(
    ctx: Ctx, url: str, name: str | None, tags: tuple[str, ...], yes: bool, pick: int | None, dry_run: bool
) -> None:
    """Add a feed, given its URL or a site's page: the page's advertised feeds and the usual paths are tried."""
    from watcher.feedfile import append_feeds, configured, plan
    from watcher.opml import FeedEntry, feed_url
    from watcher.urls import canonical_url

    cfg = ctx.config
    target = feed_url(url if "://" in url or url.startswith("feed:") else "https://" + url)
    if target is None:
        fail(f"{url!r} is not an http(s) address", 1)
    known = configured(cfg)
    if canonical_url(target) in known:
        click.echo(f"already configured: {_label(known[canonical_url(target)])}")
        return
    discovery = asyncio.run(_discover(cfg, target))
    if not discovery.feeds:
        why = f" ({discovery.page_error})" if discovery.page_error else ""
        notes = "".join(f"\n  {n}" for n in discovery.notes)
        fail(
            f"no feed found at {target}{why}: it is not a feed, none of the feeds it advertises works, "
            f"and none of the usual paths (/feed, /rss.xml, /atom.xml, …) answered with a feed{notes}",
            1,
        )
    for note in discovery.notes:
        click.echo(f"left out: {note}")
    if discovery.feeds[0].via == "address":
        click.echo(f"{target} is a feed:")
    else:
        click.echo(f"found {len(discovery.feeds)} feed(s) for {target}:")
    for n, found in enumerate(discovery.feeds, 1):
        mark = "  (already configured)" if canonical_url(found.url) in known else ""
        click.echo(
            f"  {n}. {found.title or '(untitled)'} — {found.kind}, {found.items} items — {found.url}"
            f"  [{found.via}]{mark}"
        )
    chosen = _choose(len(discovery.feeds), yes=yes, pick=pick)
    entry = FeedEntry(url=discovery.feeds[chosen - 1].url, name=name, tags=tuple(dict.fromkeys(tags)))
    todo = plan(cfg, [entry])
    if todo.skip:
        click.echo(f"nothing added: {entry.url} is {todo.skip[0][1]}")
        return
    if dry_run:
        click.echo(f"would add {_describe(entry)} to {cfg.path}")
        return
    with errors():
        append_feeds(cfg.path, [entry], comment=f"Added by `watcher feeds add {target}` on {_today()}")
    click.echo(f"added {_describe(entry)} to {cfg.path}")


def _label(feed: FeedConfig) -> str:
    return f"{feed.name!r} ({feed.url})" if feed.name else feed.url


def _choose(count: int, *, yes: bool, pick: int | None) -> int:
    if pick is not None:
        if pick > count:
            fail(f"--pick {pick}: only {count} feed(s) were found", 1)
        return pick
    if count == 1 or yes:
        return 1
    return int(click.prompt("add which one?", type=click.IntRange(1, count), default=1))


async def _discover(cfg: Config, url: str) -> Discovery:
    from watcher.discover import discover
    from watcher.fetch import Fetcher

    w = cfg.watcher
    async with Fetcher(max_connections=w.concurrency, per_host=w.per_host, user_agent=w.user_agent) as f:
        settings = cfg.fetch_settings(FeedConfig(url=url))
        return await discover(url, f, settings, now=datetime.now(UTC), max_items=w.max_items)
