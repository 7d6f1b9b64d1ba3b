"""Digest building and rendering (pure). Also the home of the example digests other alert tests use.

`python -m tests.test_digest` rewrites docs/sample-digest.{slack.json,email.html,txt} from `sample_digest()`;
`test_docs_samples_are_current` fails when a renderer changed and the samples were not regenerated.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.httpsink import block_kit_problems, mrkdwn_hazards, mrkdwn_texts
from watcher.digest import (
    Digest,
    FeedHealth,
    build_digest,
    email_subject,
    render_html,
    render_text,
    safe_link,
    segments,
    slack_payloads,
    webhook_payload,
)
from watcher.models import MARK_CLOSE, MARK_OPEN, HitView

DOCS = Path(__file__).resolve().parent.parent / "docs"
TOPIC = "serbia-china-arms"
T0 = datetime(2025, 3, 31, 4, 0, tzinfo=UTC)  # 06:00 in Belgrade (CEST, the day after the DST change)
HOSTILE = [
    "<script>alert(1)</script>",
    "<!channel> Breaking",
    "Tom & Jerry <b>bold</b>",
    "<http://evil.example|click here>",
    "*stars* _under_ ~strike~ `tick` ```block```",
    "Pipe | in <@U123> and <#C42>",
]


def marked(text: str, *words: str) -> str:
    for w in words:
        text = text.replace(w, f"{MARK_OPEN}{w}{MARK_CLOSE}")
    return text


def hit(
    id: int,
    story: str,
    *,
    title: str = "A headline",
    feed: str = "Outlet",
    url: str | None = None,
    published: datetime | None = T0,
    snippet: str = "",
    also: tuple[dict[str, object], ...] = (),
    topic: str = TOPIC,
    terms: tuple[str, ...] = ("arms",),
) -> HitView:
    return HitView(
        id=id,
        topic=topic,
        story=story,
        title=title,
        url=url if url is not None else f"https://news.example/{story}/{id}",
        feed=feed,
        guid=f"guid-{id}",
        published=published,
        first_seen=published or T0,
        backlog=False,
        terms=terms,
        snippet=snippet or marked(f"{title} about arms and more", "arms"),
        also_seen=also,
    )


def sample_digest() -> Digest:
    """A realistic digest: a story three outlets carried, one two carried, one single; one failing feed."""
    h = T0 - timedelta(hours=1)
    hits = [
        hit(
            1,
            "s-drones",
            title="Serbia takes delivery of Chinese CH-92A combat drones",
            feed="N1 Srbija",
            url="https://n1info.rs/english/news/serbia-chinese-drones/",
            published=h - timedelta(hours=9),
            snippet=marked(
                "The Serbian Armed Forces received a batch of CH-92A drones from China, the defence "
                "minister said, the latest in a series of arms deliveries from Beijing.",
                "China",
                "arms",
            ),
            terms=("china", "arms"),
            also=(
                {
                    "feed": "Balkan Insight",
                    "url": "https://balkaninsight.com/2025/03/30/drones/",
                    "guid": "b1",
                },
            ),
        ),
        hit(
            2,
            "s-drones",
            title="Srbija preuzela kineske dronove CH-92A",
            feed="RTS",
            url="https://www.rts.rs/vesti/drones.html",
            published=h - timedelta(hours=8),
            terms=("kina",),
        ),
        hit(
            3,
            "s-fk3",
            title="Vučić: FK-3 air defence systems 'fully operational' & more on the way",
            feed="Reuters World",
            url="https://www.reuters.com/world/europe/serbia-fk3-2025-03-30/?utm_source=rss&id=7",
            published=h - timedelta(hours=2),
            snippet=marked(
                "President Vučić said the Chinese-made FK-3 systems bought in 2022 ...", "Chinese"
            ),
            also=(
                {
                    "feed": "Danas",
                    "url": "https://www.danas.rs/vesti/fk3/",
                    "guid": "d9",
                    "published": "2025-03-30T23:10:00+00:00",
                },
            ),
        ),
        hit(
            4,
            "s-exercise",
            title="Joint police patrols with China resume in Belgrade",
            feed="Balkan Insight",
            url="https://balkaninsight.com/2025/03/31/patrols/",
            published=h,
            snippet=marked("Chinese police officers will again patrol with Serbian colleagues", "Chinese"),
        ),
    ]
    health = [FeedHealth(name="Politika", url="https://www.politika.rs/rss/", problem="HTTP 503 for 3 days")]
    return build_digest(
        TOPIC, hits, generated_at=T0, timezone="Europe/Belgrade", feed_health=health, healthy_feeds=41
    )


def hostile_digest() -> Digest:
    hits = [
        hit(
            i,
            f"h{i}",
            title=t,
            feed=f"Feed {t}",
            url=["https://news.example/a?x=1&y=2", "javascript:alert(1)", "https://x.example/<t>|p"][i % 3],
            snippet=marked(f"before {t} arms after *x* <b>", "arms"),
            published=T0 - timedelta(minutes=i),
            also=({"feed": f"Other {t}", "url": "https://other.example/?a=<b>&c=|", "guid": "o"},),
        )
        for i, t in enumerate(HOSTILE)
    ]
    health = [FeedHealth(name="<!here>", url="javascript:x", problem="<script>bad & worse</script>")]
    return build_digest(TOPIC, hits, generated_at=T0, feed_health=health, healthy_feeds=3)


def allowed_urls(d: Digest) -> set[str]:
    urls = {safe_link(s.url) for s in d.stories} | {safe_link(a.url) for s in d.stories for a in s.also}
    return {u for u in urls if u}


# ---------------------------------------------------------------------------------------------- building


def test_hits_of_one_story_merge_and_name_other_outlets() -> None:
    d = sample_digest()
    drones = next(s for s in d.stories if s.story == "s-drones")
    assert drones.outlet == "N1 Srbija"  # published first among the hits
    assert [a.feed for a in drones.also] == ["RTS", "Balkan Insight"]  # dated first, undated last
    assert drones.outlets == 3
    assert drones.hit_ids == (1, 2)
    assert drones.terms == ("china", "arms", "kina")
    assert sorted(d.hit_ids) == [1, 2, 3, 4]


def test_stories_ordered_by_outlets_then_newest_first() -> None:
    d = sample_digest()
    assert [s.story for s in d.stories] == ["s-drones", "s-fk3", "s-exercise"]
    hits = [hit(1, "old", published=T0 - timedelta(hours=5)), hit(2, "new"), hit(3, "mid", published=None)]
    hits[2] = hit(3, "mid", published=T0 - timedelta(hours=1))
    assert [s.story for s in build_digest(TOPIC, hits, generated_at=T0).stories] == ["new", "mid", "old"]


def test_first_outlet_is_whoever_published_first() -> None:
    fk3 = next(s for s in sample_digest().stories if s.story == "s-fk3")
    assert fk3.outlet == "Reuters World"
    assert fk3.first_outlet == "Danas"  # its also_seen entry is dated 23:10Z, before Reuters' 01:00Z


def test_also_seen_is_deduplicated_and_skips_the_primary_outlet() -> None:
    also = (
        {"feed": "B", "url": "https://b.example/1", "guid": "1"},
        {"feed": "B", "url": "https://b.example/2", "guid": "2"},
        {"feed": "A", "url": "https://a.example/again", "guid": "3"},
        {"feed": "", "url": "https://nameless.example", "guid": "4"},
    )
    (story,) = build_digest(TOPIC, [hit(1, "s", feed="A", also=also)], generated_at=T0).stories
    assert [a.feed for a in story.also] == ["B"]


def test_build_rejects_foreign_hits_and_unknown_zones() -> None:
    with pytest.raises(ValueError, match="belongs to topic"):
        build_digest(TOPIC, [hit(1, "s", topic="other")], generated_at=T0)
    with pytest.raises(Exception, match="Mars"):
        build_digest(TOPIC, [], generated_at=T0, timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("plain", [("plain", False)]),
        (f"a {MARK_OPEN}b{MARK_CLOSE} c", [("a ", False), ("b", True), (" c", False)]),
        (f"{MARK_OPEN}open to the end", [("open to the end", True)]),
        (f"x{MARK_CLOSE}y", [("xy", False)]),  # a stray close marks nothing
        (f"{MARK_OPEN}a{MARK_OPEN}b{MARK_CLOSE}c{MARK_CLOSE}d", [("abc", True), ("d", False)]),
        ("tab\tand\nnewline\x1b[31m red", [("tab and newline[31m red", False)]),
    ],
)
def test_segments(snippet: str, expected: list[tuple[str, bool]]) -> None:
    assert segments(snippet) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x?y=1&z=2#f", "https://a.example/x?y=1&z=2#f"),
        (" http://a.example/a b ", "http://a.example/a%20b"),
        ('https://a.example/<x>|"y"', "https://a.example/%3Cx%3E%7C%22y%22"),
        ("https://a.example/č", "https://a.example/%C4%8D"),
        ("javascript:alert(1)", None),
        ("data:text/html,hi", None),
        ("//a.example/x", None),
        ("https:///nohost", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_link(url: str | None, expected: str | None) -> None:
    assert safe_link(url) == expected


# ------------------------------------------------------------------------------------- text and subject


def test_render_text_lists_stories_in_the_digest_timezone() -> None:
    text = render_text(sample_digest())
    assert text.startswith("Watcher digest: serbia-china-arms: 3 new stories\n")
    assert "Mon 31 Mar 2025 06:00 CEST (Europe/Belgrade)" in text
    assert "1. Serbia takes delivery of Chinese CH-92A combat drones" in text
    assert "N1 Srbija · Sun 30 Mar 20:00 · 3 outlets" in text  # 18:00Z is 20:00 CEST
    assert "also at: RTS, Balkan Insight" in text
    assert "3 outlets" not in text.split("2. ")[1].split("\n")[1]
    assert "2 outlets, first: Danas" in text
    assert "! Politika (https://www.politika.rs/rss/): HTTP 503 for 3 days" in text
    assert MARK_OPEN not in text
    assert MARK_CLOSE not in text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)


def test_heartbeat_digest_renders_everywhere() -> None:
    health = [FeedHealth(name="Danas", url="https://www.danas.rs/feed/", problem="no items for 3 days")]
    d = build_digest(TOPIC, [], generated_at=T0, feed_health=health, healthy_feeds=412)
    assert d.is_empty
    assert (
        email_subject(d) == "[Watcher] serbia-china-arms: 0 new stories, 412 feeds healthy, 1 with problems"
    )
    assert "0 new stories, 412 feeds healthy" in render_text(d)
    assert "Danas" in render_text(d)
    assert "0 new stories, 412 feeds healthy" in render_html(d)
    (payload,) = slack_payloads(d)
    assert not block_kit_problems(payload)
    assert any("0 new stories, 412 feeds healthy" in t for t in mrkdwn_texts(payload))
    assert webhook_payload(d)["heartbeat"] is True
    quiet = build_digest(TOPIC, [], generated_at=T0, healthy_feeds=1)
    assert email_subject(quiet) == "[Watcher] serbia-china-arms: 0 new stories, 1 feed healthy"


@pytest.mark.parametrize(("n", "words"), [(1, "1 new story"), (2, "2 new stories")])
def test_email_subject_counts(n: int, words: str) -> None:
    d = build_digest(TOPIC, [hit(i, f"s{i}") for i in range(n)], generated_at=T0)
    assert email_subject(d) == f"[Watcher] {TOPIC}: {words}"
    assert email_subject(d, "[desk]").startswith("[desk] ")


def test_email_subject_is_one_line() -> None:
    d = build_digest("a\r\nBcc: x@evil.example", [], generated_at=T0)
    assert "\n" not in email_subject(d)
    assert "\r" not in email_subject(d)


# ------------------------------------------------------------------------------------------------ HTML


def test_html_escapes_feed_text_and_bolds_matches() -> None:
    d = hostile_digest()
    html = render_html(d)
    doc = lxml.html.document_fromstring(html)
    assert not doc.xpath("//script")
    assert not doc.xpath("//b")  # a feed's <b> stays text
    hrefs = doc.xpath("//a/@href")
    assert hrefs
    assert all(h.startswith(("http://", "https://")) for h in hrefs)
    assert set(hrefs) <= allowed_urls(d)
    body = doc.text_content()
    for title in HOSTILE:
        assert " ".join(title.split()) in body  # shown verbatim as text
    assert [s.text_content() for s in doc.xpath("//strong")] == ["arms"] * len(HOSTILE)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_shows_outlets_links_and_health() -> None:
    doc = lxml.html.document_fromstring(render_html(sample_digest()))
    links = {a.text_content(): a.get("href") for a in doc.xpath("//a")}
    assert links["Serbia takes delivery of Chinese CH-92A combat drones"] == (
        "https://n1info.rs/english/news/serbia-chinese-drones/"
    )
    assert links["Balkan Insight"] == "https://balkaninsight.com/2025/03/30/drones/"
    assert links["Politika"] == "https://www.politika.rs/rss/"
    assert "Feeds: 41 healthy, 1 with problems" in doc.text_content()


# ----------------------------------------------------------------------------------------------- Slack


def test_slack_payload_shape() -> None:
    d = sample_digest()
    (payload,) = slack_payloads(d)
    assert not block_kit_problems(payload)
    assert payload["text"] == "Watcher: serbia-china-arms: 3 new stories"
    header, context, *sections = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": payload["text"][9:], "emoji": False},
    }
    assert "Mon 31 Mar 2025 06:00 CEST" in context["elements"][0]["text"]
    first = sections[0]["text"]["text"]
    assert first.startswith(
        "*<https://n1info.rs/english/news/serbia-chinese-drones/"
        "|Serbia takes delivery of Chinese CH-92A combat drones>*"
    )
    assert "N1 Srbija · Sun 30 Mar 20:00 · 3 outlets" in first
    assert "from *China*, the defence minister said, the latest in a series of *arms* deliveries" in first
    assert "also at: <https://www.rts.rs/vesti/drones.html|RTS>, <https://balkaninsight.com/" in first
    fk3 = sections[1]["text"]["text"]
    assert "&amp; more on the way" in fk3
    assert "utm_source=rss&amp;id=7|" in fk3
    assert "first: Danas" in fk3
    assert "Politika" in sections[-1]["text"]["text"]
    for text in mrkdwn_texts(payload):
        assert not mrkdwn_hazards(text, allowed_urls(d))


def test_slack_escapes_hostile_feed_text() -> None:
    d = hostile_digest()
    payloads = slack_payloads(d)
    for payload in payloads:
        assert not block_kit_problems(payload)
        for text in mrkdwn_texts(payload):
            assert not mrkdwn_hazards(text, allowed_urls(d)), text
            assert "<!channel>" not in text
            assert "<!here>" not in text
            assert "<@U123>" not in text
            assert "<http://evil" not in text
            assert "javascript:" not in text
    texts = "\n".join(t for p in payloads for t in mrkdwn_texts(p))
    assert "&lt;!channel&gt; Breaking" in texts
    assert "Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt;" in texts
    assert "&lt;http://evil.example∣click here&gt;" in texts  # inside a link label: | is a look-alike
    # A feed's own emphasis characters cannot pair with ours: only our *arms* and title stars remain.
    for t in texts.split("\n"):
        if t.startswith("> "):
            assert re.sub(r"\*arms\*", "", t).count("*") == 0, t


def test_large_digest_is_split_within_limits() -> None:
    hits = [
        hit(i, f"s{i:03d}", title=f"Story {i:03d} " + "&<" * 200, snippet=marked("arms " * 2000, "arms"))
        for i in range(120)
    ]
    hits += [hit(1000 + i, "s000", feed=f"Outlet {i}") for i in range(80)]  # one story, 81 outlets
    health = [FeedHealth(name=f"feed{i}", url="https://f.example", problem="x" * 500) for i in range(300)]
    d = build_digest(TOPIC, hits, generated_at=T0, feed_health=health, healthy_feeds=5)
    payloads = slack_payloads(d)
    assert len(payloads) >= 3
    seen = []
    for i, payload in enumerate(payloads, 1):
        assert not block_kit_problems(payload), block_kit_problems(payload)
        assert payload["text"].endswith(f"(part {i}/{len(payloads)})")
        assert len(json.dumps(payload)) < 200_000
        for block in payload["blocks"][2:]:
            seen += re.findall(r"Story (\d{3})", block["text"]["text"])
    assert seen == [f"{i:03d}" for i in range(120)]  # every story once, in digest order
    assert "and 300 more" not in json.dumps(payloads[-1])
    assert "more" in payloads[-1]["blocks"][-1]["text"]["text"]  # the health list was cut, and says so


def test_slack_link_with_monster_url_falls_back_to_plain_title() -> None:
    d = build_digest(TOPIC, [hit(1, "s", url="https://a.example/" + "x" * 5000)], generated_at=T0)
    (payload,) = slack_payloads(d)
    assert not block_kit_problems(payload)
    assert payload["blocks"][2]["text"]["text"].startswith("*A headline*")


_feed_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4000)


@settings(max_examples=60, deadline=None)
@given(title=_feed_text, snippet=_feed_text, outlet=_feed_text, url=_feed_text, n=st.integers(1, 60))
def test_slack_limits_and_escaping_hold_for_any_feed_text(
    title: str, snippet: str, outlet: str, url: str, n: int
) -> None:
    hits = [
        hit(
            i,
            f"s{i}",
            title=title,
            snippet=snippet or "x",
            feed=outlet or "o",
            url="https://a.example/" + url,
        )
        for i in range(n)
    ]
    d = build_digest(TOPIC, hits, generated_at=T0)
    for payload in slack_payloads(d):
        assert not block_kit_problems(payload)
        for text in mrkdwn_texts(payload):
            assert not mrkdwn_hazards(text, allowed_urls(d))


# --------------------------------------------------------------------------------------------- webhook


def test_webhook_payload_is_plain_json_with_highlights() -> None:
    d = sample_digest()
    payload = json.loads(json.dumps(webhook_payload(d)))
    assert payload["topic"] == TOPIC
    assert payload["count"] == 3
    assert payload["heartbeat"] is False
    assert payload["generated_at"] == "2025-03-31T04:00:00Z"
    drones = payload["stories"][0]
    assert drones["outlets"] == 3
    assert [a["feed"] for a in drones["also_at"]] == ["RTS", "Balkan Insight"]
    assert [drones["snippet"][a:b] for a, b in drones["highlights"]] == ["China", "arms"]
    assert MARK_OPEN not in json.dumps(payload)
    assert payload["feed_health"] == [
        {"name": "Politika", "url": "https://www.politika.rs/rss/", "problem": "HTTP 503 for 3 days"}
    ]
    hostile = webhook_payload(hostile_digest())
    assert hostile["stories"][0]["title"] == HOSTILE[0]  # JSON carries the truth; escaping is the reader's
    assert {s["url"] for s in hostile["stories"]} >= {None}


# ------------------------------------------------------------------------------------------ doc samples


def samples() -> dict[str, str]:
    d = sample_digest()
    return {
        "sample-digest.slack.json": json.dumps(slack_payloads(d), indent=2, ensure_ascii=False) + "\n",
        "sample-digest.email.html": render_html(d),
        "sample-digest.txt": render_text(d),
    }


def test_docs_samples_are_current() -> None:
    for name, content in samples().items():
        path = DOCS / name
        assert path.exists(), f"{path} missing: run `python -m tests.test_digest`"
        assert path.read_text(encoding="utf-8") == content, (
            f"{path} is stale: run `python -m tests.test_digest`"
        )


if __name__ == "__main__":
    DOCS.mkdir(exist_ok=True)
    for name, content in samples().items():
        (DOCS / name).write_text(content, encoding="utf-8")
        sys.stdout.write(f"wrote {DOCS / name}\n")
