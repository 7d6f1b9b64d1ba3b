"""The feeds group: health of every configured feed."""

from __future__ import annotations

import json
from typing import Any

import click

from watcher.cli.base import Ctx, iso, main, table
from watcher.models import FeedState


def feed_json(s: FeedState, name: str | None) -> dict[str, Any]:
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
    table(
        ["status", "name", "items", "fails", "last polled", "error / url"],
        [
            [
                r["status"], str(r["name"] or ""), str(r["items"]), str(r["failures"]),
                (r["last_polled"] or "")[:16], r["last_error"] or r["url"],
            ]
            for r in rows
        ],
    )  # fmt: skip
