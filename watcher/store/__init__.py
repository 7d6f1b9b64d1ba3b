"""The store: the only package that speaks SQL."""

from __future__ import annotations

from watcher.store.store import Store, parse_ts, story_key, ts

__all__ = ["Store", "parse_ts", "story_key", "ts"]
