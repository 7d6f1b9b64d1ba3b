"""Article pages → the article's own text, so topics see an item's body and not only the feed's teaser.

Precision beats recall here. A news page carries far more words than its article: navigation, "latest
stories" sidebars, related links, comments, cookie banners, footers. Any of those reaching the matcher
makes a page about Serbian air defence "match" a topic about Tesla because of a sidebar headline, and
every such false hit costs an analyst's attention. So trafilatura runs in its precision mode with
comments and tables left out, and when it finds nothing convincing the item keeps the feed's summary
(``fallback``) rather than whatever text the page had.

Two layers: :func:`extract_text` is pure and CPU-bound (bytes in, text or a reason out), run off the
event loop; :func:`fetch_full_texts` fetches the pages of one feed's new items through the fetcher (the
only HTTP client, which applies the feed's deadline, size cap, redirect limit, address guard and the
per-host politeness limit) and always answers, for every item it was given, ``ok`` or ``fallback`` with
the reason in words.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import trafilatura

from watcher.htmltext import clean, collapse_block, truncate
from watcher.models import FetchResult, FetchSettings, FetchStatus, Item

log = logging.getLogger(__name__)

OK = "ok"
FALLBACK = "fallback"
MAX_CHARS = 100_000  # matching cost grows with text; no news article needs more
BUDGET_TIMEOUTS = 2.0  # one feed's full-text phase lasts at most this many fetch deadlines
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Types servers put on HTML pages often enough that refusing them would lose real articles.
_UNLABELLED = frozenset({"", "application/octet-stream", "text/plain"})


@dataclass(frozen=True, slots=True)
class FullText:
    """What full text brought one item: ``text`` when ``status`` is ok, else the reason in ``error``."""

    status: str  # ok | fallback
    text: str = ""
    error: str | None = None


def fallback(reason: str) -> FullText:
    return FullText(FALLBACK, error=reason)


NOT_FETCHED = fallback("not fetched in this poll")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip(' "'):
            return value.strip(' "')
    return None


def _decoded(html: bytes, content_type: str | None) -> bytes | str:
    """The page as text when the server named a charset Python knows; otherwise bytes, so trafilatura
    can read the page's own <meta charset> (which is where most sites declare it)."""
    charset = _charset(content_type)
    if charset is None:
        return html
    try:
        return html.decode(charset, errors="replace")
    except LookupError:
        return html


def extract_text(html: bytes, url: str, content_type: str | None = None) -> FullText:
    """The main text of an article page, or a fallback saying why there is none. Pure; CPU-bound."""
    media = _media_type(content_type)
    if media not in _HTML_TYPES and media not in _UNLABELLED:
        return fallback(f"not an HTML page ({media})")
    if not html.strip():
        return fallback("the page is empty")
    try:
        text = trafilatura.extract(
            _decoded(html, content_type),
            url=url,
            favor_precision=True,
            include_comments=False,
            include_tables=False,
            include_images=False,
            include_links=False,
            deduplicate=False,
            with_metadata=False,
        )
    except Exception as e:  # a parser bug on one hostile page must cost that item its full text only
        log.warning("url=%s full-text extraction failed: %s: %s", url, type(e).__name__, e)
        return fallback(f"extraction failed: {type(e).__name__}")
    body = collapse_block(clean(text or ""))
    if not body:
        return fallback("no article text found on the page")
    return FullText(OK, text=truncate(body, MAX_CHARS))


def with_full_text(item: Item, full: FullText | None) -> Item:
    """``item`` carrying its full-text outcome; None (never attempted) counts as a fallback."""
    full = full or NOT_FETCHED
    return replace(item, full_text=full.text, full_text_status=full.status, full_text_error=full.error)


class PageFetcher(Protocol):
    async def fetch_page(self, url: str, *, settings: FetchSettings, zone_url: str) -> FetchResult: ...


def _fetch_failure(result: FetchResult) -> str:
    what = result.error or (f"HTTP {result.http_status}" if result.http_status else "fetch failed")
    return f"article page: {what}"


async def _one(
    fetcher: PageFetcher,
    link: str,
    settings: FetchSettings,
    zone_url: str,
    executor: Executor | None,
) -> FullText:
    result = await fetcher.fetch_page(link, settings=settings, zone_url=zone_url)
    if result.status != FetchStatus.OK or result.body is None:
        return fallback(_fetch_failure(result))
    job = partial(extract_text, result.body, result.final_url or link, result.headers.get("content-type"))
    return await asyncio.get_running_loop().run_in_executor(executor, job)


async def fetch_full_texts(
    fetcher: PageFetcher,
    items: Sequence[Item],
    *,
    settings: FetchSettings,
    zone_url: str,
    limit: int,
    budget: float | None = None,
    skip: Callable[[Item], str | None] = lambda _item: None,
    executor: Executor | None = None,
) -> dict[str, FullText]:
    """Full text for each of ``items`` (a feed's new items), keyed by guid.

    Pages are fetched concurrently; the fetcher's per-host limit is what keeps one site from being
    hammered, and its deadline bounds each page. At most ``limit`` pages are fetched; ``skip`` may give a
    reason not to fetch an item at all. The whole phase ends after ``budget`` seconds (default:
    BUDGET_TIMEOUTS fetch deadlines): pages still waiting for a per-host slot then, or still running, fall
    back, so a slow site delays its own feed by at most that much and never holds back the others.
    """
    if budget is None:
        budget = BUDGET_TIMEOUTS * settings.timeout
    out: dict[str, FullText] = {}
    todo: list[Item] = []
    seen: set[str] = set()
    for item in items:
        if item.guid in seen:
            continue  # a feed listing one entry twice gets one fetch
        seen.add(item.guid)
        reason = skip(item)
        if reason is not None:
            out[item.guid] = fallback(reason)
        elif not item.link:
            out[item.guid] = fallback("the item has no link")
        elif len(todo) >= limit:
            out[item.guid] = fallback(f"not fetched: more than {limit} new items in one poll (full_text_max)")
        else:
            todo.append(item)
    if not todo:
        return out
    tasks = {
        item.guid: asyncio.ensure_future(_one(fetcher, item.link or "", settings, zone_url, executor))
        for item in todo
    }
    try:
        _done, pending = await asyncio.wait(tasks.values(), timeout=budget)
    finally:  # over budget, or the poll itself cancelled (daemon shutdown): no page outlives its feed
        running = [task for task in tasks.values() if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
    for guid, task in tasks.items():
        if task in pending:
            out[guid] = fallback(f"not fetched within the feed's full-text budget of {budget:g}s")
        elif task.exception() is not None:
            exc = task.exception()
            log.error("guid=%s full text: internal error", guid, exc_info=exc)
            out[guid] = fallback(f"internal error: {type(exc).__name__}")
        else:
            out[guid] = task.result()
    return out
