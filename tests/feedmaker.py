"""Builds small feeds in each format from plain entries, so tests can change a feed between polls."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Entry:
    guid: str
    title: str
    link: str
    summary: str
    published: datetime | None = None


def _date(e: Entry) -> datetime:
    return e.published or datetime.now(UTC)


def rss(entries: list[Entry], title: str = "RSS feed", language: str | None = None) -> str:
    items = "".join(
        f"<item><guid isPermaLink='false'>{escape(e.guid)}</guid><title>{escape(e.title)}</title>"
        f"<link>{escape(e.link)}</link><description>{escape(e.summary)}</description>"
        f"<pubDate>{format_datetime(_date(e))}</pubDate></item>"
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
        f"<link>http://example.org/</link><description>d</description>"
        + (f"<language>{escape(language)}</language>" if language else "")
        + f"{items}</channel></rss>"
    )


def atom(entries: list[Entry], title: str = "Atom feed") -> str:
    items = "".join(
        f"<entry><id>{escape(e.guid)}</id><title>{escape(e.title)}</title>"
        f'<link rel="alternate" href="{escape(e.link)}"/><summary type="html">{escape(e.summary)}</summary>'
        f"<updated>{_date(e).isoformat()}</updated></entry>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:feed</id><updated>{datetime.now(UTC).isoformat()}</updated>"
        f"{items}</feed>"
    )


def rdf(entries: list[Entry], title: str = "RDF feed") -> str:
    items = "".join(
        f'<item rdf:about="{escape(e.link)}"><title>{escape(e.title)}</title><link>{escape(e.link)}</link>'
        f"<description>{escape(e.summary)}</description><dc:date>{_date(e).isoformat()}</dc:date></item>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<channel rdf:about="http://example.org/"><title>{escape(title)}</title><link>http://example.org/</link>'
        f"<description>d</description></channel>{items}</rdf:RDF>"
    )


def json_feed(entries: list[Entry], title: str = "JSON feed") -> str:
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": title,
            "items": [
                {
                    "id": e.guid,
                    "title": e.title,
                    "url": e.link,
                    "content_html": e.summary,
                    "date_published": _date(e).isoformat(),
                }
                for e in entries
            ],
        }
    )
