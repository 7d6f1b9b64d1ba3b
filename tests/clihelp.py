"""Running the CLI in-process for tests, with JSON-lines output parsed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from watcher.cli import main


def cli(config: Path, *args: str, code: int | None = 0) -> Result:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    if code is not None:
        assert result.exit_code == code, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    return result


def json_lines(config: Path, *args: str) -> list[dict[str, Any]]:
    out = cli(config, *args, "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]
