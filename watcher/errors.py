"""Exceptions that cross module boundaries.

WatcherError
 ├── ConfigError          a config file is unusable: names file, key path and value
 ├── QuerySyntaxError     a topic query cannot be parsed: names the column
 ├── FeedError            one feed failed; the pipeline turns it into a stored error
 │    ├── FetchError
 │    └── ParseError
 ├── StoreError           the database cannot be opened or migrated
 └── AlertError           a channel refused or could not be reached

Messages are built from the object they concern, so a log line or a CLI error always says *which* file,
feed, query or channel is at fault (the habit of lemon24/reader and apscheduler).
"""

from __future__ import annotations


class WatcherError(Exception):
    """Base of every error Watcher raises on purpose."""


class ConfigError(WatcherError):
    def __init__(self, path: str, key_path: str, message: str, value: object = None) -> None:
        self.path = path
        self.key_path = key_path
        self.value = value
        self.detail = message
        where = f"{path}: {key_path}" if key_path else path
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{where}: {message}{shown}")


class QuerySyntaxError(WatcherError):
    """A malformed query; ``column`` is 1-based and ``str()`` draws a caret under it."""

    def __init__(self, query: str, column: int, message: str) -> None:
        self.query = query
        self.column = column
        self.detail = message
        caret = " " * (column - 1) + "^"
        super().__init__(f"{message} at column {column}\n  {query}\n  {caret}")


class FeedError(WatcherError):
    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.detail = message
        super().__init__(f"{url}: {message}")


class FetchError(FeedError):
    pass


class ParseError(FeedError):
    pass


class StoreError(WatcherError):
    pass


class AlertError(WatcherError):
    """A channel failed. ``permanent`` means retrying will not help (bad webhook, 404)."""

    def __init__(
        self, channel: str, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        self.channel = channel
        self.detail = message
        self.permanent = permanent
        self.retry_after = retry_after
        super().__init__(f"channel {channel!r}: {message}")
