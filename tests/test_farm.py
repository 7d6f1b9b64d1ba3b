"""The benchmark's feed farm (bench/farm.py), and the process-pool poll path the benchmark exercises.

The farm must produce feeds Watcher reads on its fast path with the manifest's item counts, identical to
feedparser's reading; ``mutate`` must change exactly K % of the files. Polling through a process pool
(parse, dedup keys, fingerprints and matches in worker processes) must store exactly what the in-process
path stores.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.feedserver import FeedServer
from watcher.config import load_config
from watcher.fetch import Fetcher
from watcher.models import Item, ParsedFeed
from watcher.parse import parse_feed
from watcher.pipeline import Runtime, analysis_pool, poll_all, sync_feeds
from watcher.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import farm as farmlib

KINDS = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> farmlib.Farm:
    return farmlib.generate(tmp_path_factory.mktemp("farm"), 24, seed=3, base=NOW)


def _parse(f: farmlib.Farm, spec: farmlib.FeedSpec, fast: bool = True) -> ParsedFeed:
    body = f.path(spec).read_bytes()
    return parse_feed(body, url=f"http://farm/{spec.filename}", headers={"content-type": KINDS[spec.kind]},
                      now=NOW, fast_path=fast)  # fmt: skip


def test_farm_feeds_are_realistic_and_parse_on_the_fast_path(farm: farmlib.Farm) -> None:
    assert {s.kind for s in farm.feeds} == {"rss", "atom"}
    assert {s.lang for s in farm.feeds} == {"en", "sr-latn", "sr-cyrl"}
    texts = []
    for spec in farm.feeds:
        assert 30 <= spec.count <= 60
        assert 15_000 <= farm.path(spec).stat().st_size <= 140_000
        parsed = _parse(farm, spec)
        assert parsed.parser == "fast"
        assert len(parsed.items) == spec.count
        texts.extend(i.text for i in parsed.items)
    joined = "\n".join(texts)
    assert any(c in joined for c in "čćšžđ")  # Serbian Latin with diacritics
    assert any("\u0400" <= c <= "\u04ff" for c in joined)  # and Cyrillic
    assert "<p>" not in joined and "&lt;" not in joined  # HTML descriptions became plain text


def test_fast_path_and_feedparser_agree_on_the_farm(farm: farmlib.Farm) -> None:
    for spec in farm.feeds[:8]:
        fast, slow = _parse(farm, spec), _parse(farm, spec, fast=False)
        assert slow.parser == "feedparser"
        assert fast.items == slow.items
        assert (fast.title, fast.link, fast.language) == (slow.title, slow.link, slow.language)


def test_generation_is_deterministic(tmp_path: Path, farm: farmlib.Farm) -> None:
    again = farmlib.generate(tmp_path, 24, seed=3, base=NOW)
    for a, b in zip(farm.feeds, again.feeds, strict=True):
        assert farm.path(a).read_bytes() == again.path(b).read_bytes()


def test_mutate_changes_exactly_k_percent(tmp_path: Path) -> None:
    f = farmlib.generate(tmp_path, 40, seed=5, base=NOW)
    before = {p.name: p.read_bytes() for p in f.files()}
    mtimes = {p.name: p.stat().st_mtime for p in f.files()}
    changed = farmlib.mutate(f, 25)
    after = {p.name: p.read_bytes() for p in f.files()}
    differ = {name for name in before if before[name] != after[name]}
    assert len(changed) == 10 and differ == {s.filename for s in changed}
    for spec in changed:
        assert f.path(spec).stat().st_mtime > mtimes[spec.filename]  # new validators for nginx
        old = _parse_bytes(before[spec.filename], spec)
        new = _parse(f, spec)
        assert len(new.items) == spec.count
        added = [i for i in new.items if i.guid not in {o.guid for o in old}]
        assert 1 <= len(added) <= 8 and new.items[: len(added)] == tuple(added)
    reloaded = farmlib.load(tmp_path)
    assert [s.start for s in reloaded.feeds] == [s.start for s in f.feeds]


def _parse_bytes(body: bytes, spec: farmlib.FeedSpec) -> tuple[Item, ...]:
    return parse_feed(body, url=f"http://farm/{spec.filename}", headers={"content-type": KINDS[spec.kind]},
                      now=NOW).items  # fmt: skip


def _poll_farm(
    tmp_path: Path, feed_server: FeedServer, farm: farmlib.Farm, pool: Executor | None
) -> dict[str, object]:
    for spec in farm.feeds:
        feed_server.serve(f"/{spec.filename}", farm.path(spec).read_bytes(), KINDS[spec.kind])
    feeds = "".join(f'[[feeds]]\nurl = "{feed_server.url("/" + s.filename)}"\n' for s in farm.feeds)
    from peers import ALIASES

    topics = ALIASES + "".join(f"[[topics]]\nname = {n!r}\nquery = {q!r}\n" for n, q in _topics())
    cfg_path = tmp_path / "w.toml"
    cfg_path.write_text(f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n{feeds}{topics}', encoding="utf-8")
    cfg = load_config(cfg_path, environ={})

    async def go() -> None:
        with Store(cfg.database_path) as store:
            async with Fetcher() as fetcher:
                rt = Runtime(config=cfg, store=store, fetcher=fetcher, parse_executor=pool, clock=lambda: NOW)
                sync_feeds(rt)
                await poll_all(rt)

    asyncio.run(go())
    with Store(cfg.database_path) as store:
        rows = list(store.iter_items())
        hits = sorted(
            (h.topic, sorted({h.guid} | {str(c["guid"]) for c in h.also_seen})) for h in store.hits()
        )
    # Which copy of a story came first depends on which feed finished first, in either mode: compare the
    # items, how they are grouped into stories and which stories each topic hit, not reasons or snippets.
    items = sorted((r["feed_url"].rsplit("/", 1)[1], r["guid"], r["title"], r["content_hash"]) for r in rows)
    groups: dict[int, set[tuple[str, str]]] = {}
    for r in rows:
        groups.setdefault(r["story_id"], set()).add((r["feed_url"].rsplit("/", 1)[1], r["guid"]))
    stories = sorted(sorted(g) for g in groups.values())
    return {"items": items, "stories": stories, "hits": hits}


def _topics() -> list[tuple[str, str]]:
    from peers import TOPICS

    return TOPICS


def test_process_pool_poll_stores_what_the_in_process_poll_stores(
    tmp_path: Path, feed_server: FeedServer, farm: farmlib.Farm
) -> None:
    # analysis_pool declines on one CPU; the pool path is still what this test is about
    pool = analysis_pool(len(farm.feeds)) or ProcessPoolExecutor(
        2, mp_context=multiprocessing.get_context("fork")
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        pooled = _poll_farm(tmp_path / "a", feed_server, farm, pool)
    finally:
        pool.shutdown()
    inline = _poll_farm(tmp_path / "b", feed_server, farm, None)
    assert len(pooled["items"]) == farm.items()  # type: ignore[arg-type]
    assert pooled["hits"]  # the farm's vocabulary gives the topics real work
    assert len(pooled["stories"]) < farm.items()  # and republished stories give dedup real work  # type: ignore[arg-type]
    assert pooled == inline
