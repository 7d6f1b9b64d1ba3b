"""Running Watcher: check, poll, run, digest, deliveries, health."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime

import click

from watcher.cli.base import Ctx, errors, fail, iso, main, pass_ctx, table
from watcher.models import PollOutcome
from watcher.store import Store

log = logging.getLogger(__name__)


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
    from watcher.pipeline import Runtime, analysis_pool, poll_all, sync_feeds

    cfg = ctx.config
    pool = analysis_pool(len(cfg.feeds))  # before the database opens: the workers are forked

    async def go(store: Store) -> list[PollOutcome]:
        w = cfg.watcher
        async with Fetcher(max_connections=w.concurrency, per_host=w.per_host, user_agent=w.user_agent) as f:
            rt = Runtime(config=cfg, store=store, fetcher=f, parse_executor=pool)
            sync_feeds(rt)
            out = await poll_all(rt)
            log.debug("poll: %d writes in %d transactions", rt.writer.jobs, rt.writer.batches)
            return out

    try:
        with ctx.store() as store:
            outcomes = asyncio.run(go(store))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for o in outcomes:
        detail = f"{o.new_items} new, {o.updated_items} updated, {o.new_hits} hits" if o.parsed else ""
        click.echo(f"{o.status.value:<13} {o.url}  {o.error or detail}")
    failed = sum(o.error is not None for o in outcomes)
    click.echo(
        f"polled {len(outcomes)} feeds: {sum(o.new_items for o in outcomes)} new items, "
        f"{sum(o.new_hits for o in outcomes)} new hits, {failed} failed"
    )


@main.command()
@click.option("--tick", default=5.0, show_default=True, help="Seconds between checks for due feeds.")
@click.option("--grace", default=10.0, show_default=True, help="Seconds in-flight polls get after SIGTERM.")
@pass_ctx
def run(ctx: Ctx, tick: float, grace: float) -> None:
    """Run the daemon: poll feeds on schedule and send digests, until SIGINT/SIGTERM."""
    from watcher.daemon import Daemon

    daemon = Daemon(ctx.config, tick=tick, grace=grace)
    with errors():
        asyncio.run(daemon.run())


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
        fail(f"no topic named {topic!r} in {cfg.path}", 2)
    if channel is not None and channel not in cfg.file.channels:
        fail(f"no channel named {channel!r} in {cfg.path}", 2)
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
                "attempts": d.attempts, "last_error": d.last_error, "sent_at": iso(d.sent_at),
                "next_attempt": iso(d.next_attempt), "hit": d.hit_id,
            }, ensure_ascii=False))  # fmt: skip
        return
    table(
        ["status", "topic", "channel", "story", "tries", "sent / error"],
        [[d.status, d.topic, d.channel, d.story, str(d.attempts), iso(d.sent_at) or d.last_error or ""]
         for d in rows],
    )  # fmt: skip


@main.command()
@click.option("--max-age", default="1h", show_default=True, help="Oldest acceptable last poll cycle.")
@pass_ctx
def health(ctx: Ctx, max_age: str) -> None:
    """Exit 0 when the database is writable and the daemon's last poll cycle is recent (Docker HEALTHCHECK)."""
    from watcher.health import check_liveness
    from watcher.units import parse_duration

    try:
        limit = parse_duration(max_age)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--max-age") from None
    with ctx.store() as store:
        state = check_liveness(store, datetime.now(UTC), limit)
    if not state.ok:
        fail(f"unhealthy: {state.detail}", 1)
    click.echo(f"ok: {state.detail}")
