"""Digests: a topic's new hits grouped into stories, and every rendering of them. Pure: no I/O, no clock.

    build_digest(topic, hits, generated_at=...) -> Digest
    render_text / render_html / email_subject / slack_payloads / webhook_payload (Digest) -> output

Everything that came from a feed (titles, outlet names, snippets, URLs) is hostile until escaped for the
output at hand: HTML through Jinja2's autoescape, Slack mrkdwn through `_mrkdwn`, URLs through `safe_link`
(http/https only, no characters that could close a Slack link or an HTML attribute). Snippets carry
MARK_OPEN/MARK_CLOSE around matched words; each renderer escapes the text first, then turns the markers
into its own emphasis, so a feed cannot forge emphasis or markup.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from watcher.models import MARK_CLOSE, MARK_OPEN, HitView

# Slack Block Kit limits (api.slack.com/reference/block-kit/blocks): 50 blocks per message, 3000 characters
# of section text, 150 of header text. The per-message budget keeps a 50-section message far below the
# size at which Slack answers `msg_too_long`.
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_CHARS = 3000
SLACK_HEADER_CHARS = 150
SLACK_MESSAGE_CHARS = 30_000


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedHealth:
    """A feed that is failing or has gone silent; `problem` is words for a person."""

    name: str
    url: str
    problem: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Sighting:
    """Another outlet carrying the same story."""

    feed: str
    url: str | None
    published: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Story:
    """One story in a digest: the earliest matching hit, plus every other outlet that carried it."""

    story: str
    title: str
    url: str | None
    outlet: str
    published: datetime | None
    first_seen: datetime
    terms: tuple[str, ...]
    snippet: str  # with MARK_OPEN / MARK_CLOSE
    also: tuple[Sighting, ...]  # other outlets, earliest first
    hit_ids: tuple[int, ...]  # every hit folded into this story, for delivery bookkeeping

    @property
    def when(self) -> datetime:
        return self.published or self.first_seen

    @property
    def outlets(self) -> int:
        return 1 + len(self.also)

    @property
    def first_outlet(self) -> str:
        """The outlet that published first; another outlet's earlier date beats the matching hit's."""
        first = self.outlet
        when = self.when
        for s in self.also:
            if s.published is not None and s.published < when:
                first, when = s.feed, s.published
        return first


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    topic: str
    stories: tuple[Story, ...]
    generated_at: datetime
    timezone: str = "UTC"
    feed_health: tuple[FeedHealth, ...] = ()  # failing or silent feeds
    healthy_feeds: int = 0

    @property
    def count(self) -> int:
        return len(self.stories)

    @property
    def is_empty(self) -> bool:
        """An empty digest is a heartbeat: it says nothing new happened and how the feeds are."""
        return not self.stories

    @property
    def hit_ids(self) -> tuple[int, ...]:
        return tuple(i for s in self.stories for i in s.hit_ids)


# ---------------------------------------------------------------------------------------------- building


def _aware(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sighting(m: Mapping[str, object]) -> Sighting | None:
    feed, url = m.get("feed"), m.get("url")
    if not isinstance(feed, str) or not feed:
        return None
    return Sighting(
        feed=feed, url=url if isinstance(url, str) else None, published=_aware(m.get("published"))
    )


def _story(hits: list[HitView]) -> Story:
    hits = sorted(hits, key=lambda h: (h.published or h.first_seen, h.id))
    primary = hits[0]
    seen: dict[str, Sighting] = {}
    candidates = [Sighting(feed=h.feed, url=h.url, published=h.published or h.first_seen) for h in hits[1:]]
    candidates += [s for h in hits for m in h.also_seen if (s := _sighting(m)) is not None]
    far = datetime.max.replace(tzinfo=UTC)
    for s in sorted(candidates, key=lambda s: (s.published or far, s.feed)):
        if s.feed != primary.feed and s.feed not in seen:
            seen[s.feed] = s
    terms = tuple(dict.fromkeys(t for h in hits for t in h.terms))
    return Story(
        story=primary.story,
        title=primary.title,
        url=primary.url,
        outlet=primary.feed,
        published=primary.published,
        first_seen=primary.first_seen,
        terms=terms,
        snippet=primary.snippet,
        also=tuple(seen.values()),
        hit_ids=tuple(h.id for h in hits),
    )


def build_digest(
    topic: str,
    hits: Iterable[HitView],
    *,
    generated_at: datetime,
    timezone: str = "UTC",
    feed_health: Iterable[FeedHealth] = (),
    healthy_feeds: int = 0,
) -> Digest:
    """Group ``hits`` (all of ``topic``) into stories: most outlets first, then newest first."""
    ZoneInfo(timezone)  # fail here, not half-way through rendering
    groups: dict[str, list[HitView]] = {}
    for h in hits:
        if h.topic != topic:
            raise ValueError(f"hit {h.id} belongs to topic {h.topic!r}, not {topic!r}")
        groups.setdefault(h.story, []).append(h)
    stories = sorted(
        (_story(g) for g in groups.values()), key=lambda s: (-s.outlets, -s.when.timestamp(), s.story)
    )
    return Digest(
        topic=topic,
        stories=tuple(stories),
        generated_at=generated_at,
        timezone=timezone,
        feed_health=tuple(feed_health),
        healthy_feeds=healthy_feeds,
    )


# ------------------------------------------------------------------------------------------ text helpers

# C0/C1 controls (except our two markers, \x02 and \x03) and the bidi overrides and isolates that can make a
# title display as something else (the "Trojan Source" trick).
_DROP = re.compile("[\x00\x01\x04-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """One line of feed text: whitespace runs collapsed to one space, control characters dropped.

    Markers are kept; they are the one control character we put there ourselves.
    """
    return _DROP.sub("", _SPACES.sub(" ", text)).strip()


def segments(snippet: str) -> list[tuple[str, bool]]:
    """Split a marked snippet into (text, matched) runs; tolerant of nested or unbalanced markers."""
    runs: list[tuple[str, bool]] = []
    depth = 0
    buf: list[str] = []
    for ch in clean(snippet):
        if ch in (MARK_OPEN, MARK_CLOSE):
            if buf:
                runs.append(("".join(buf), depth > 0))
                buf = []
            depth = depth + 1 if ch == MARK_OPEN else max(0, depth - 1)
        else:
            buf.append(ch)
    if buf:
        runs.append(("".join(buf), depth > 0))
    merged: list[tuple[str, bool]] = []
    for text, marked in runs:
        if merged and merged[-1][1] == marked:
            merged[-1] = (merged[-1][0] + text, marked)
        else:
            merged.append((text, marked))
    return merged


def plain(text: str) -> str:
    return "".join(t for t, _ in segments(text))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def safe_link(url: str | None) -> str | None:
    """``url`` fit for `<url|text>` or an href: http(s) only; `| < > "` and spaces percent-encoded."""
    if not url:
        return None
    url = "".join(ch for ch in url.strip() if unicodedata.category(ch) != "Cc")
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url, safe="!#$%&'()*+,/:;=?@[]~")


def _local(dt: datetime, zone: ZoneInfo, *, year: bool = False) -> str:
    local = dt.astimezone(zone)
    return local.strftime("%a %d %b %Y %H:%M %Z" if year else "%a %d %b %H:%M")


def _stories_word(n: int) -> str:
    return f"{n} new {'story' if n == 1 else 'stories'}"


def _heartbeat_line(d: Digest) -> str:
    line = f"0 new stories, {d.healthy_feeds} feed{'' if d.healthy_feeds == 1 else 's'} healthy"
    if d.feed_health:
        line += f", {len(d.feed_health)} with problems"
    return line


def email_subject(d: Digest, prefix: str = "[Watcher]") -> str:
    """E.g. "[Watcher] serbia-china-arms: 3 new stories"; one line whatever the topic name holds."""
    what = _heartbeat_line(d) if d.is_empty else _stories_word(d.count)
    return clean(f"{prefix} {d.topic}: {what}").replace(MARK_OPEN, "").replace(MARK_CLOSE, "")


# ------------------------------------------------------------------------------------------------ text


def render_text(d: Digest) -> str:
    """The plain-text digest (console channel, e-mail text part): no markup, no control characters."""
    zone = ZoneInfo(d.timezone)
    lines = [
        f"Watcher digest: {plain(d.topic)}: {_heartbeat_line(d) if d.is_empty else _stories_word(d.count)}",
        f"{_local(d.generated_at, zone, year=True)} ({d.timezone})",
        "",
    ]
    for n, s in enumerate(d.stories, 1):
        meta = f"{plain(s.outlet)} · {_local(s.when, zone)}"
        if s.outlets > 1:
            meta += f" · {s.outlets} outlets"
            if s.first_outlet != s.outlet:
                meta += f", first: {plain(s.first_outlet)}"
        lines.append(f"{n}. {plain(s.title) or '(untitled)'}")
        lines.append(f"   {meta}")
        if link := safe_link(s.url):
            lines.append(f"   {link}")
        if snippet := plain(s.snippet):
            lines.append(f"   {snippet}")
        if s.also:
            lines.append("   also at: " + ", ".join(plain(a.feed) for a in s.also))
        lines.append("")
    if d.feed_health:
        lines.append(f"Feeds: {d.healthy_feeds} healthy, {len(d.feed_health)} with problems")
        for f in d.feed_health:
            where = f" ({link})" if (link := safe_link(f.url)) else ""
            lines.append(f"  ! {plain(f.name)}{where}: {plain(f.problem)}")
        lines.append("")
    elif not d.is_empty:
        lines.append(f"Feeds: {d.healthy_feeds} healthy")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ HTML

_ENV = Environment(
    loader=PackageLoader("watcher", "templates"),
    autoescape=True,  # always: every template here renders feed text into HTML
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters.update(plain=plain, link=safe_link, snippet=lambda text: _snippet_html(text))


def _snippet_html(snippet: str) -> Markup:
    return Markup("").join(
        Markup("<strong>{}</strong>").format(t) if marked else escape(t) for t, marked in segments(snippet)
    )


def render_html(d: Digest) -> str:
    """The HTML e-mail part. Feed text reaches the template through the `plain` and `link` filters as
    plain strings, so autoescape covers it; only `snippet` returns Markup, built from escaped pieces."""
    zone = ZoneInfo(d.timezone)
    return _ENV.get_template("digest.html").render(
        d=d,
        subject=email_subject(d),
        headline=_heartbeat_line(d) if d.is_empty else _stories_word(d.count),
        generated=_local(d.generated_at, zone, year=True),
        local=lambda dt: _local(dt, zone),
    )


# ----------------------------------------------------------------------------------------------- Slack

# Slack has no escape for its emphasis characters, so feed text gets look-alikes: a stray `*` or `~`
# cannot pair up with our own bold markers, and a backtick cannot open a code span that swallows them.
_MRKDWN = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "*": "∗", "`": "ˋ", "~": "∼"})


def _cut(text: str, limit: int | None) -> tuple[str, bool]:
    """(``text`` escaped for mrkdwn, at most ``limit`` characters after escaping; whether it was cut).

    Cutting happens between whole source characters, so an entity like `&amp;` is never split.
    """
    if limit is None or len(text) * 5 <= limit:  # no character escapes to more than 5
        return text.translate(_MRKDWN), False
    out: list[str] = []
    used = 0
    for ch in text:
        esc = ch.translate(_MRKDWN)
        if limit is not None and used + len(esc) > limit - 1:
            return ("".join(out).rstrip() + "…" if limit >= 1 else ""), True
        out.append(esc)
        used += len(esc)
    return "".join(out), False


def _mrkdwn(text: str, limit: int | None = None) -> str:
    """Feed text as inert Slack mrkdwn (markers dropped), at most ``limit`` characters after escaping."""
    return _cut(plain(text), limit)[0]


def _slack_link(url: str | None, label: str, limit: int = 700) -> str:
    link = safe_link(url)
    if link is None:
        return label
    link = link.replace("&", "&amp;")  # Slack wants & escaped inside links too
    if len(link) > limit:  # a monster URL would eat the section budget; show the label alone
        return label
    # Slack ends the URL at the first `|`; one in the label is shown, but a look-alike leaves no doubt.
    return f"<{link}|{label.replace('|', '∣')}>"


def _snippet_mrkdwn(snippet: str, limit: int) -> str:
    """The snippet with matched words in *bold*; bold wraps the word only, as Slack needs."""
    out: list[str] = []
    used = 0
    for text, marked in segments(snippet):
        core = text.strip()
        if not (marked and core):
            piece, cut = _cut(text, limit - used)
        else:
            lead = text[: len(text) - len(text.lstrip())]
            trail = text[len(text.rstrip()) :]
            inner, cut = _cut(core, limit - used - len(lead) - len(trail) - 2)
            piece = f"{lead}*{inner}*{trail}" if inner else ""
        if piece:
            out.append(piece)
            used += len(piece)
        if cut or not piece:
            break
    return "".join(out).strip()


def _also_line(also: tuple[Sighting, ...], limit: int) -> str:
    shown: list[str] = []
    used = len("also at: ") + len(" and 999 more")
    for a in also:
        entry = _slack_link(a.url, _mrkdwn(a.feed, 60), limit=300)
        if used + len(entry) + 2 > limit:
            break
        shown.append(entry)
        used += len(entry) + 2
    more = len(also) - len(shown)
    return "also at: " + ", ".join(shown) + (f" and {more} more" if more else "")


def _story_section(s: Story, zone: ZoneInfo) -> dict[str, Any]:
    # Each part has a budget in escaped characters; together they stay below SLACK_SECTION_CHARS:
    # link 700 + title 300 + meta ~210 + snippet 600 + also-at 1000 + separators.
    title = _mrkdwn(s.title, 300) or "(untitled)"
    meta = f"{_mrkdwn(s.outlet, 80)} · {_local(s.when, zone)}"
    if s.outlets > 1:
        meta += f" · {s.outlets} outlets"
        if s.first_outlet != s.outlet:
            meta += f", first: {_mrkdwn(s.first_outlet, 80)}"
    lines = [f"*{_slack_link(s.url, title)}*", meta]
    if snippet := _snippet_mrkdwn(s.snippet, 600):
        lines.append(f"> {snippet}")
    if s.also:
        lines.append(_also_line(s.also, 1000))
    return {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}


def _health_section(d: Digest) -> dict[str, Any]:
    head = f"*{len(d.feed_health)} feed{'' if len(d.feed_health) == 1 else 's'} with problems*"
    head += f" ({d.healthy_feeds} healthy)"
    lines = [head]
    budget = SLACK_SECTION_CHARS - len(head) - 40
    for n, f in enumerate(d.feed_health):
        line = f"• {_mrkdwn(f.name, 80)}: {_mrkdwn(f.problem, 300)}"
        if len(line) + 1 > budget:
            lines.append(f"… and {len(d.feed_health) - n} more")
            break
        lines.append(line)
        budget -= len(line) + 1
    return {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}


def _slack_body(d: Digest, zone: ZoneInfo) -> list[dict[str, Any]]:
    """One section per story, in order, then the heartbeat line or the feed problems."""
    body = [_story_section(s, zone) for s in d.stories]
    if d.is_empty:
        body.append({"type": "section", "text": {"type": "mrkdwn", "text": _heartbeat_line(d)}})
    if d.feed_health:
        body.append(_health_section(d))
    return body


def _slack_groups(body: list[dict[str, Any]]) -> list[list[int]]:
    """Indices of the body blocks each Slack message carries, within Block Kit's block and size limits."""
    groups: list[list[int]] = [[]]
    used = 0
    room = SLACK_MAX_BLOCKS - 2  # header + context in every message
    for i, block in enumerate(body):
        size = len(block["text"]["text"])  # every body block is a section
        if groups[-1] and (len(groups[-1]) >= room or used + size > SLACK_MESSAGE_CHARS):
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += size
    return groups


def slack_parts_hits(d: Digest) -> list[tuple[int, ...]]:
    """The hit ids each part of ``slack_payloads(d)`` carries, so the parts Slack accepted can count as sent.

    Story blocks come first and one per story, so a block index below the story count is that story.
    """
    body = _slack_body(d, ZoneInfo(d.timezone))
    return [
        tuple(h for i in group if i < len(d.stories) for h in d.stories[i].hit_ids)
        for group in _slack_groups(body)
    ]


def slack_payloads(d: Digest) -> list[dict[str, Any]]:
    """Incoming-webhook payloads for ``d``: one message, or several when Block Kit limits demand it.

    Each message repeats the header with "(part i/n)"; feed problems go last. Deterministic for a given
    Digest, so a sender can resume a half-sent digest by skipping the parts already accepted.
    """
    zone = ZoneInfo(d.timezone)
    topic = plain(d.topic)
    context = {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": f"{_local(d.generated_at, zone, year=True)} · {_mrkdwn(d.timezone)}"}
        ],
    }
    body = _slack_body(d, zone)

    groups = [[body[i] for i in group] for group in _slack_groups(body)]

    headline = _heartbeat_line(d) if d.is_empty else _stories_word(d.count)
    payloads = []
    for i, blocks in enumerate(groups, 1):
        part = f" (part {i}/{len(groups)})" if len(groups) > 1 else ""
        header = _shorten(f"{_shorten(topic, 80)}: {headline}{part}", SLACK_HEADER_CHARS)
        payloads.append(
            {
                "text": f"Watcher: {_mrkdwn(topic, 80)}: {headline}{part}",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}},
                    context,
                    *blocks,
                ],
                "unfurl_links": False,  # no previews fetched from hostile or tracking URLs
                "unfurl_media": False,
            }
        )
    return payloads


# --------------------------------------------------------------------------------------------- webhook


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _highlights(snippet: str) -> tuple[str, list[list[int]]]:
    text, spans, pos = [], [], 0
    for t, marked in segments(snippet):
        if marked:
            spans.append([pos, pos + len(t)])
        text.append(t)
        pos += len(t)
    return "".join(text), spans


def webhook_payload(d: Digest) -> dict[str, Any]:
    """A JSON-ready digest for generic webhooks (version 1). Times are UTC ISO 8601; ``snippet`` is plain
    text and ``highlights`` lists [start, end) character offsets of the matched words in it."""
    stories = []
    for s in d.stories:
        snippet, spans = _highlights(s.snippet)
        stories.append(
            {
                "story": s.story,
                "title": plain(s.title),
                "url": safe_link(s.url),
                "outlet": plain(s.outlet),
                "first_outlet": plain(s.first_outlet),
                "published": _iso(s.published),
                "first_seen": _iso(s.first_seen),
                "terms": list(s.terms),
                "snippet": snippet,
                "highlights": spans,
                "outlets": s.outlets,
                "also_at": [
                    {"feed": plain(a.feed), "url": safe_link(a.url), "published": _iso(a.published)}
                    for a in s.also
                ],
                "hit_ids": list(s.hit_ids),
            }
        )
    return {
        "version": 1,
        "topic": d.topic,
        "generated_at": _iso(d.generated_at),
        "timezone": d.timezone,
        "count": d.count,
        "heartbeat": d.is_empty,
        "summary": _heartbeat_line(d) if d.is_empty else _stories_word(d.count),
        "healthy_feeds": d.healthy_feeds,
        "feed_health": [{"name": f.name, "url": f.url, "problem": f.problem} for f in d.feed_health],
        "stories": stories,
    }
