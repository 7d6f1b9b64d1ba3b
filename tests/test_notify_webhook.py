"""Generic webhook and console senders, and the dispatcher."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.httpsink import HttpSink
from tests.test_digest import hostile_digest, sample_digest
from watcher.channels import ConsoleChannel, WebhookChannel
from watcher.digest import render_text, webhook_payload
from watcher.errors import AlertError
from watcher.notify import console, send_digest, webhook

pytestmark = pytest.mark.anyio


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as s:
        s.reply("/in")
        yield s


def hook(sink: HttpSink, **extra: object) -> WebhookChannel:
    return WebhookChannel.model_validate({"type": "webhook", "url": sink.url("/in"), "timeout": 5, **extra})


async def test_payload_arrives_as_json_with_topic_header(sink: HttpSink) -> None:
    d = sample_digest()
    assert await webhook.send(hook(sink, headers={"Authorization": "Bearer t0k"}), d, name="hook") == 1
    (got,) = sink.received("/in")
    assert got.json() == json.loads(json.dumps(webhook_payload(d)))
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.headers["x-watcher-topic"] == "serbia-china-arms"
    assert got.headers["authorization"] == "Bearer t0k"
    assert got.headers["user-agent"].startswith("Watcher/")
    assert "x-watcher-signature" not in got.headers


async def test_signature_lets_the_receiver_verify_the_body(sink: HttpSink) -> None:
    await webhook.send(hook(sink, secret="s3cret"), hostile_digest(), name="hook")
    (got,) = sink.received("/in")
    expected = "sha256=" + hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-watcher-signature"], expected)
    assert got.json()["stories"][0]["title"] == "<script>alert(1)</script>"  # JSON carries text as is


@pytest.mark.parametrize(
    ("status", "headers", "permanent", "retry_after", "says"),
    [
        (429, {"Retry-After": "12"}, False, 12.0, "rate limited (HTTP 429"),
        (500, {}, False, None, "server error (HTTP 500"),
        (503, {"Retry-After": "60"}, False, 60.0, "server error (HTTP 503"),
        (404, {}, True, None, "rejected (HTTP 404"),
        (410, {}, True, None, "rejected (HTTP 410"),
        (308, {"Location": "/new"}, True, None, "redirects"),
    ],
)
async def test_status_mapping(
    sink: HttpSink,
    status: int,
    headers: dict[str, str],
    permanent: bool,
    retry_after: float | None,
    says: str,
) -> None:
    sink.reply("/in", status, "nope", headers)
    with pytest.raises(AlertError) as e:
        await webhook.send(hook(sink), sample_digest(), name="hook")
    assert e.value.permanent is permanent
    assert e.value.retry_after == retry_after
    assert says in str(e.value)
    assert str(e.value).startswith("channel 'hook': ")
    assert "/in" not in str(e.value)


async def test_skip_parts_means_already_delivered(sink: HttpSink) -> None:
    assert await webhook.send(hook(sink), sample_digest(), name="hook", skip_parts=1) == 1
    assert sink.received() == []


# ----------------------------------------------------------------------------------------------- console


async def test_console_writes_the_text_digest_to_the_stream() -> None:
    out = io.StringIO()
    ch = ConsoleChannel(type="console")
    assert await console.send(ch, sample_digest(), name="screen", stream=out) == 1
    assert out.getvalue() == render_text(sample_digest()) + "\n"


async def test_console_appends_to_a_file_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "data" / "digests.log"
    ch = ConsoleChannel(type="console", file=str(path), stdout=False)
    await send_digest("screen", ch, sample_digest())
    await send_digest("screen", ch, hostile_digest())
    content = path.read_text(encoding="utf-8")
    assert content.count(console.SEPARATOR) == 2
    assert render_text(sample_digest()) in content
    assert "\x1b" not in content


async def test_console_unwritable_file_is_permanent(tmp_path: Path) -> None:
    ch = ConsoleChannel(type="console", file=str(tmp_path), stdout=False)  # a directory
    with pytest.raises(AlertError) as e:
        await console.send(ch, sample_digest(), name="screen")
    assert e.value.permanent
    assert "cannot append" in str(e.value)


async def test_dispatcher_routes_by_channel_type(sink: HttpSink) -> None:
    assert await send_digest("hook", hook(sink), sample_digest()) == 1
    assert len(sink.received("/in")) == 1
