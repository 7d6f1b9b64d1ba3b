"""Shared fixtures. Keep each fixture small and documented; add new ones in alphabetical order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.feedserver import FeedServer


@pytest.fixture
def anyio_backend() -> str:
    # Watcher runs on asyncio (asyncio.timeout, APScheduler's AsyncIOScheduler); trio is not a target.
    return "asyncio"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 with an empty route map; see tests/feedserver.py."""
    with FeedServer() as srv:
        yield srv
