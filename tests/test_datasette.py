"""The archive opens in Datasette with config/datasette.yml: table pages, FTS search, facets, canned queries.

Datasette runs in-process through its own ASGI client on a database filled by real polls (tests/test_search.py's
corpus), exactly the file and metadata the README tells a user to open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasette.app import Datasette

from tests.clihelp import json_lines
from tests.feedserver import FeedServer
from tests.test_search import CORPUS, populate

METADATA = Path(__file__).resolve().parents[1] / "config" / "datasette.yml"


def _get(db: Path, *paths: str) -> list[tuple[int, Any]]:
    """Fetch each path from a Datasette serving ``db`` with the repository's metadata: (status, JSON or HTML)."""

    async def go() -> list[tuple[int, Any]]:
        ds = Datasette([str(db)], metadata=yaml.safe_load(METADATA.read_text(encoding="utf-8")))
        await ds.invoke_startup()
        out: list[tuple[int, Any]] = []
        for path in paths:
            r = await ds.client.get(path)
            out.append((r.status_code, r.json() if ".json" in path else r.text))
        return out

    return asyncio.run(go())


@pytest.fixture
def archive(feed_server: FeedServer, tmp_path: Path) -> tuple[Path, Path]:
    cfg = populate(feed_server, tmp_path)
    return cfg, tmp_path / "watcher.db"  # the metadata's database key is the file's stem: "watcher"


def test_metadata_names_the_default_database() -> None:
    meta = yaml.safe_load(METADATA.read_text(encoding="utf-8"))
    assert Path("data/watcher.db").stem in meta["databases"]
    assert meta["databases"]["watcher"]["tables"]["items"]["fts_table"] == "items_fts"


def test_items_page_search_facets_and_queries(archive: tuple[Path, Path]) -> None:
    cfg, db = archive
    (page, search, accented, prefix, facets, hits, per_day, outlets, topic, tables) = _get(
        db,
        "/watcher/items",
        "/watcher/items.json?_search=vucic&_shape=objects&_col=title&_col=guid",
        "/watcher/items.json?_search=Vučić&_shape=objects&_col=guid",
        "/watcher/items.json?_search=bespilot*&_shape=objects&_col=guid",
        "/watcher/items.json?_facet=language&_size=0",
        "/watcher/hits.json?_size=0",
        "/watcher/hits_per_topic_per_day.json?_shape=objects",
        "/watcher/stories_by_outlets.json?_shape=objects",
        "/watcher/topic_hits.json?topic=mission&_shape=objects",
        "/watcher.json",
    )
    assert page[0] == 200 and "Items" in page[1] and 'name="_search"' in page[1]
    # FTS over folded text: the Latin query finds Latin, accented and Cyrillic spellings alike, and says the
    # same as `watcher search` for one word
    assert search[0] == 200
    expected = {r["guid"] for r in json_lines(cfg, "search", "Vučić")}
    assert {r["guid"] for r in search[1]["rows"]} == expected
    assert "Вучић о ракетама" in {r["title"] for r in search[1]["rows"]}
    assert {r["guid"] for r in accented[1]["rows"]} == expected  # remove_diacritics: Vučić = vucic
    assert {r["guid"] for r in prefix[1]["rows"]} == {"cyr-0"}  # беспилотне, folded
    # facets from the metadata, with counts
    assert facets[0] == 200
    languages = {f["value"]: f["count"] for f in facets[1]["facet_results"]["language"]["results"]}
    assert languages == {"en": len(CORPUS[0][2]), "sr": len(CORPUS[1][2]) + len(CORPUS[2][2])}
    feeds = {f["label"]: f["count"] for f in facets[1]["facet_results"]["feed_url"]["results"]}
    assert feeds == {"en": 9, "sr": 5, "cyr": 4}  # labelled with the feed's configured name
    topics = {f["value"]: f["count"] for f in hits[1]["facet_results"]["topic"]["results"]}
    assert topics == {
        t: len(json_lines(cfg, "hits", "--topic", t)) for t in ("mission", "sr-only", "en-feeds")
    }
    assert "backlog" in hits[1]["facet_results"]
    # canned queries
    assert per_day[0] == 200 and {r["topic"] for r in per_day[1]["rows"]} == set(topics)
    assert sum(r["hits"] for r in per_day[1]["rows"]) == sum(topics.values())
    assert outlets[0] == 200 and outlets[1]["ok"]
    assert topic[0] == 200 and len(topic[1]["rows"]) == topics["mission"]
    # internal tables stay out of the way
    hidden = {t["name"] for t in tables[1]["tables"] if t["hidden"]}
    assert {"neardup_items", "neardup_bands", "schema_version", "items_fts"} <= hidden
