"""`watcher serve`: the Atom, health and metrics endpoints without the daemon (see watcher/serve.py)."""

from __future__ import annotations

import asyncio

import click

from watcher.cli.base import Ctx, errors, main, pass_ctx


@main.command()
@click.option("--host", help="Address to listen on (default: [serve] host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port (default: [serve] port, 8080; 0 picks one)."
)
@click.option("--grace", default=5.0, show_default=True, help="Seconds open requests get after SIGTERM.")
@pass_ctx
def serve(ctx: Ctx, host: str | None, port: int | None, grace: float) -> None:
    """Serve each topic's hits as Atom (/topics/NAME.atom), /healthz and /metrics over HTTP until SIGTERM."""
    from watcher.serve import create_app, listen, serve_until_signalled

    cfg = ctx.config
    with errors():
        sock = listen(host or cfg.serve.host, cfg.serve.port if port is None else port)
        asyncio.run(serve_until_signalled(create_app(cfg), sock, grace=grace))
