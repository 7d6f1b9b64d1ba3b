"""The `watcher` command: a thin shell over the library, one module per group of commands.

Exit codes: 0 ok; 1 a command's own failure (e.g. a digest channel failed); 2 configuration error;
3 database error.
"""

from __future__ import annotations

from watcher.cli import archive, core, feeds, hits, serve
from watcher.cli.base import main

__all__ = ["archive", "core", "feeds", "hits", "main", "serve"]
