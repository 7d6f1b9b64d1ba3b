from __future__ import annotations

from watcher.cli import main

main()
