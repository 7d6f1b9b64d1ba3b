"""Slack sender against a real local HTTP sink that checks Block Kit limits the way Slack does."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.httpsink import HttpSink, Reply, block_kit_problems, mrkdwn_hazards, mrkdwn_texts
from tests.test_digest import T0, TOPIC, allowed_urls, hit, hostile_digest, marked, sample_digest
from watcher.channels import SlackChannel
from watcher.digest import Digest, build_digest, slack_payloads
from watcher.errors import AlertError
from watcher.notify import PartialDeliveryError, send_digest, slack
from watcher.notify.webhook import encode, parse_retry_after, post_json

pytestmark = pytest.mark.anyio


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as s:
        s.slack("/services/T0/B0/secret")
        yield s


def channel(sink: HttpSink, path: str = "/services/T0/B0/secret") -> SlackChannel:
    return SlackChannel(type="slack", webhook_url=sink.url(path), timeout=5)


def big_digest(n: int = 120) -> Digest:
    hits = [
        hit(i, f"s{i:03d}", title=f"Story {i:03d}", snippet=marked("arms " * 150, "arms")) for i in range(n)
    ]
    return build_digest(TOPIC, hits, generated_at=T0)


async def test_digest_is_posted_as_valid_block_kit(sink: HttpSink) -> None:
    d = sample_digest()
    assert await slack.send(channel(sink), d, name="desk") == 1
    (got,) = sink.received()
    assert got.problems == ()
    assert got.headers["content-type"].startswith("application/json")
    assert [got.json()] == slack_payloads(d)


async def test_large_digest_arrives_as_several_valid_messages_in_order(sink: HttpSink) -> None:
    d = big_digest()
    total = await slack.send(channel(sink), d, name="desk")
    got = sink.received()
    assert total == len(got) > 1
    assert all(r.problems == () for r in got)
    assert [r.json()["text"].rsplit(" ", 1)[-1] for r in got] == [
        f"{i}/{total})" for i in range(1, total + 1)
    ]
    titles = [b["text"]["text"].split("|")[1].split(">")[0] for r in got for b in r.json()["blocks"][2:]]
    assert titles == [f"Story {i:03d}" for i in range(120)]


async def test_hostile_titles_arrive_escaped(sink: HttpSink) -> None:
    d = hostile_digest()
    await slack.send(channel(sink), d, name="desk")
    for r in sink.received():
        payload = r.json()
        assert not block_kit_problems(payload)
        for text in mrkdwn_texts(payload):
            assert not mrkdwn_hazards(text, allowed_urls(d)), text
        raw = r.body.decode()
        assert "<!channel>" not in raw
        assert "<http://evil" not in raw


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("30", 30.0), (None, None), ("soon", None)],
)
async def test_429_is_transient_with_retry_after(
    sink: HttpSink, retry_after: str | None, expected: float | None
) -> None:
    sink.reply(
        "/services/T0/B0/secret", 429, "rate_limited", {"Retry-After": retry_after} if retry_after else {}
    )
    with pytest.raises(AlertError) as e:
        await slack.send(channel(sink), sample_digest(), name="desk")
    assert not e.value.permanent
    assert e.value.retry_after == expected
    assert e.value.channel == "desk"
    assert "rate limited (HTTP 429: rate_limited)" in str(e.value)


async def test_500_is_transient(sink: HttpSink) -> None:
    sink.reply("/services/T0/B0/secret", 500, "internal_error")
    with pytest.raises(AlertError) as e:
        await slack.send(channel(sink), sample_digest(), name="desk")
    assert not e.value.permanent
    assert "HTTP 500: internal_error" in str(e.value)


async def test_deleted_webhook_404_is_permanent_and_the_url_stays_secret(sink: HttpSink) -> None:
    with pytest.raises(AlertError) as e:
        await slack.send(channel(sink, "/services/T0/B0/gone"), sample_digest(), name="desk")
    assert e.value.permanent
    assert "HTTP 404: no_service" in str(e.value)
    assert "/services/" not in str(e.value)
    assert "127.0.0.1" not in str(e.value)


async def test_redirect_is_permanent_and_not_followed(sink: HttpSink) -> None:
    sink.reply("/services/T0/B0/secret", 301, "", {"Location": "/elsewhere"})
    with pytest.raises(AlertError) as e:
        await slack.send(channel(sink), sample_digest(), name="desk")
    assert e.value.permanent
    assert len(sink.received()) == 1


async def test_unreachable_webhook_is_transient() -> None:
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch = SlackChannel(type="slack", webhook_url=f"http://127.0.0.1:{port}/hook", timeout=5)
    with pytest.raises(AlertError) as e:
        await slack.send(ch, sample_digest(), name="desk")
    assert not e.value.permanent
    assert "could not reach" in str(e.value)


async def test_failed_middle_part_resumes_without_repeating_earlier_parts(sink: HttpSink) -> None:
    d = big_digest()
    total = len(slack_payloads(d))
    assert total >= 3
    sink.script("/services/T0/B0/secret", [Reply(200), Reply(503, "busy", {"Retry-After": "7"})])
    with pytest.raises(PartialDeliveryError) as e:
        await slack.send(channel(sink), d, name="desk")
    assert (e.value.sent, e.value.total) == (1, total)
    assert e.value.retry_after == 7.0
    assert not e.value.permanent
    assert "after 1 of" in str(e.value)
    assert await send_digest("desk", channel(sink), d, skip_parts=e.value.sent) == total
    accepted = [r.json()["text"] for r in sink.received()]
    del accepted[1]  # the part the server refused with 503
    assert accepted == [p["text"] for p in slack_payloads(d)]  # each part accepted exactly once


async def test_sink_rejects_invalid_blocks_like_slack_and_that_is_permanent(sink: HttpSink) -> None:
    bad = {"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}
    async with httpx.AsyncClient() as client:
        with pytest.raises(AlertError) as e:
            await post_json(client, "desk", sink.url("/services/T0/B0/secret"), encode(bad))
    assert e.value.permanent
    assert "invalid_blocks" in str(e.value)
    assert sink.received()[0].problems == ("blocks[0] (header): text is 151 characters, limit 150",)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(format_datetime(T0 + timedelta(seconds=90), usegmt=True), now=T0) == 90.0
    assert parse_retry_after(format_datetime(T0 - timedelta(seconds=90), usegmt=True), now=T0) == 0.0
    assert parse_retry_after("tomorrow") is None
    assert parse_retry_after("") is None
