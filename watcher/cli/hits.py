"""Reading what was found: hits, and trying queries with match and backtest."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from watcher.cli.base import Ctx, errors, iso, main, marked, pass_ctx, table, topic_or_query
from watcher.models import HitView, body_text


def hit_json(h: HitView) -> dict[str, Any]:
    return {
        "topic": h.topic,
        "title": h.title,
        "url": h.url,
        "feed": h.feed,
        "guid": h.guid,
        "published": iso(h.published),
        "first_seen": iso(h.first_seen),
        "story": h.story,
        "backlog": h.backlog,
        "terms": list(h.terms),
        "snippet": marked(h.snippet),
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
        "full_text": h.full_text_status,
        "full_text_error": h.full_text_error,
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
    table(
        ["seen", "topic", "feed", "title", "also", ""],
        [
            [
                h.first_seen.strftime("%Y-%m-%d %H:%M"), h.topic, h.feed, h.title,
                str(len(h.also_seen)) if h.also_seen else "", "backlog" if h.backlog else "",
            ]
            for h in rows
        ],
    )  # fmt: skip


@main.command("match")
@click.argument("query")
@click.option("--text", "text", help="The text to test.")
@click.option("--title", default="", help="A title to test (title: terms only look here).")
@click.option("--file", "file", type=click.File("r", encoding="utf-8"), help="Read the text from a file.")
@pass_ctx
def match_cmd(ctx: Ctx, query: str, text: str | None, title: str, file: Any) -> None:
    """Show whether QUERY matches a text, and why (which terms, where). Uses the config's aliases if any."""
    from watcher.explain import explain
    from watcher.match import prepare
    from watcher.query import parse_query

    aliases: dict[str, tuple[str, ...]] = {}
    if ctx.config_path.exists():
        aliases = ctx.config.file.aliases
    if file is not None:
        text = file.read()
    if text is None and not title:
        raise click.UsageError("give --text, --title or --file")
    with errors():
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
    from watcher.match import prepare
    from watcher.topicindex import TopicIndex

    cfg = ctx.config
    wanted, q = topic_or_query(cfg, topic, query_text, "give exactly one of --topic or --query")
    feed_urls = None if wanted is None else [f.url for f in cfg.feeds if wanted.wants_feed(f)]
    index = TopicIndex([("q", q)])
    per_feed: dict[str, int] = {}
    total = 0
    with ctx.store() as store:
        for row in store.iter_items(feed_urls):
            total += 1
            text = body_text(row["summary"], row["content"], row["full_text"] or "")
            m = index.match(prepare(row["title"], text)).get("q")
            if m is None or (wanted is not None and not wanted.wants_language(row["language"])):
                continue
            feed = row["feed_name"] or row["feed_url"]
            per_feed[feed] = per_feed.get(feed, 0) + 1
            if fmt == "json":
                out = {"feed": feed, "title": row["title"], "url": row["link"], "guid": row["guid"],
                       "published": row["published"], "terms": list(m.terms),
                       "snippet": marked(m.snippet)}  # fmt: skip
                click.echo(json.dumps(out, ensure_ascii=False))
            else:
                click.echo(f"{(row['published'] or row['first_seen'])[:16]}  {feed}  {row['title'][:90]}")
    if fmt == "table":
        click.echo(f"\n{sum(per_feed.values())} of {total} stored items match")
        for feed, n in sorted(per_feed.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {n:6d}  {feed}")
