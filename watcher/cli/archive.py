"""The archive: search everything stored, and prune what is older than the retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from watcher.cli.base import Ctx, errors, fail, iso, main, marked, pass_ctx, table, topic_or_query


@main.command()
@click.argument("query", required=False)
@click.option("--topic", help="Use this topic's query, feeds and languages.")
@click.option("--since", help="Only items dated after this: an age (7d, 12h) or a date (2025-03-01).")
@click.option("--feed", "feeds", multiple=True, help="Only this feed (name, title or URL); repeatable.")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many results.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
def search(
    ctx: Ctx,
    query: str | None,
    topic: str | None,
    since: str | None,
    feeds: tuple[str, ...],
    limit: int | None,
    fmt: str,
) -> None:
    """Search every stored item with the topic query language, newest first (QUERY, or --topic)."""
    from watcher import archive

    cfg = ctx.config
    t, q = topic_or_query(cfg, topic, query, "give a QUERY or --topic NAME (not both)")
    after = None
    if since is not None:
        try:
            after = archive.parse_since(since, datetime.now(UTC))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--since") from None
    stats = archive.SearchStats()
    with ctx.store() as store:
        missing = archive.unknown_feeds(store, feeds)
        if missing:
            fail(f"no stored feed named {missing[0]!r} (give a feed's name, title or URL)", 2)
        found = archive.search(
            store, q, since=after, feeds=feeds, topic=t, config=cfg, limit=limit, stats=stats
        )
        if fmt == "json":
            for h in found:
                click.echo(json.dumps({
                    "feed": h.feed, "title": h.title, "url": h.url, "guid": h.guid,
                    "published": iso(h.published), "first_seen": iso(h.first_seen), "story": h.story,
                    "language": h.language, "terms": list(h.terms), "snippet": marked(h.snippet),
                }, ensure_ascii=False))  # fmt: skip
            return
        rows = [
            [(h.published or h.first_seen).strftime("%Y-%m-%d %H:%M"), h.feed, h.title, ", ".join(h.terms)]
            for h in found
        ]
    table(["date", "feed", "title", "terms"], rows)
    narrowed = "the index narrowed nothing" if stats.expression is None else "from the full-text index"
    click.echo(f"\n{stats.matched} matches; {stats.candidates} items read ({narrowed})")


@main.command()
@click.option("--older-than", help="Age of the items to remove (default: [watcher] retention), e.g. 90d.")
@click.option(
    "--include-hits", is_flag=True, help="Also remove stories with hits, once all their items are old."
)
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--vacuum", is_flag=True, help="Compact the index and the database file afterwards.")
@pass_ctx
def prune(ctx: Ctx, older_than: str | None, include_hits: bool, dry_run: bool, vacuum: bool) -> None:
    """Remove items first seen longer ago than --older-than (or the retention); hits and their stories stay."""
    from watcher import archive
    from watcher.units import parse_duration

    cfg = ctx.config
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--older-than") from None
    elif cfg.watcher.retention is not None:
        age = cfg.watcher.retention
    else:
        raise click.UsageError("give --older-than AGE, or set [watcher] retention in the configuration")
    before = datetime.now(UTC) - timedelta(seconds=age)
    with ctx.store() as store, errors():
        report = archive.prune(
            store, before=before, include_hits=include_hits, dry_run=dry_run, vacuum=vacuum
        )
    click.echo(report.format())
