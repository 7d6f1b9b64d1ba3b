"""E-mail sender against a real aiosmtpd server on 127.0.0.1: plain, STARTTLS + AUTH, implicit TLS."""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import lxml.html
import pytest

from tests.smtpserver import SMTPTestServer, self_signed
from tests.test_digest import HOSTILE, T0, allowed_urls, hostile_digest, sample_digest
from watcher.channels import EmailChannel
from watcher.errors import AlertError
from watcher.models import MARK_CLOSE, MARK_OPEN
from watcher.notify import email, send_digest

pytestmark = pytest.mark.anyio


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as server:
        yield server


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    pytest.importorskip("cryptography", reason="STARTTLS tests need `cryptography` to make a certificate")
    return self_signed(tmp_path)


def mailbox(port: int, **extra: object) -> EmailChannel:
    table = {
        "type": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
        "from": "Watcher <watcher@example.org>",
        "to": ["desk@example.org", "editor@example.org"],
        "timeout": 10,
        **extra,
    }
    return EmailChannel.model_validate(table)


def parts(msg: EmailMessage) -> tuple[str, str]:
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


async def test_one_multipart_message_per_digest(smtp: SMTPTestServer) -> None:
    d = sample_digest()
    assert await email.send(mailbox(smtp.port), d, name="team") == 1
    (delivered,) = smtp.delivered
    assert delivered.mail_from == "watcher@example.org"
    assert delivered.rcpt_tos == ("desk@example.org", "editor@example.org")
    msg = delivered.message
    assert msg["Subject"] == "[Watcher] serbia-china-arms: 3 new stories"
    assert msg["From"] == "Watcher <watcher@example.org>"
    assert msg["To"] == "desk@example.org, editor@example.org"
    assert parsedate_to_datetime(msg["Date"]) == T0
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", msg["Message-ID"])
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = parts(msg)
    assert "1. Serbia takes delivery of Chinese CH-92A combat drones" in text
    assert "https://n1info.rs/english/news/serbia-chinese-drones/" in text
    doc = lxml.html.document_fromstring(html)
    links = {a.text_content(): a.get("href") for a in doc.xpath("//a")}
    assert links["Serbia takes delivery of Chinese CH-92A combat drones"] == (
        "https://n1info.rs/english/news/serbia-chinese-drones/"
    )
    assert links["RTS"] == "https://www.rts.rs/vesti/drones.html"
    assert [s.text_content() for s in doc.xpath("//strong")][:2] == ["China", "arms"]


async def test_hostile_titles_are_escaped_in_html_and_inert_in_text(smtp: SMTPTestServer) -> None:
    d = hostile_digest()
    await email.send(mailbox(smtp.port), d, name="team")
    text, html = parts(smtp.messages[0])
    doc = lxml.html.document_fromstring(html)
    assert not doc.xpath("//script")
    assert not doc.xpath("//b")
    assert set(doc.xpath("//a/@href")) <= allowed_urls(d)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;!channel&gt;" in html
    assert "Tom &amp; Jerry" in html
    for title in HOSTILE:
        assert title in doc.text_content()
        assert title in text  # plain text shows the title as written: nothing there interprets it
    assert "javascript:" not in html
    assert "javascript:" not in text
    assert MARK_OPEN not in text + html
    assert MARK_CLOSE not in text + html


async def test_heartbeat_subject(smtp: SMTPTestServer) -> None:
    from watcher.digest import FeedHealth, build_digest

    health = [FeedHealth(name="Danas", url="https://www.danas.rs/feed/", problem="HTTP 404")]
    d = build_digest("quiet", [], generated_at=T0, feed_health=health, healthy_feeds=12)
    await send_digest("team", mailbox(smtp.port, subject_prefix="[desk]"), d)
    assert smtp.messages[0]["Subject"] == "[desk] quiet: 0 new stories, 12 feeds healthy, 1 with problems"


@pytest.mark.parametrize(("code", "permanent"), [(451, False), (452, False), (550, True), (554, True)])
async def test_data_reply_codes(smtp: SMTPTestServer, code: int, permanent: bool) -> None:
    smtp.reject_data = (code, "policy says no")
    with pytest.raises(AlertError) as e:
        await email.send(mailbox(smtp.port), sample_digest(), name="team")
    assert e.value.permanent is permanent
    assert f"{code} policy says no" in str(e.value)
    assert e.value.channel == "team"


async def test_all_recipients_refused(smtp: SMTPTestServer) -> None:
    smtp.reject_rcpt = {
        "desk@example.org": (550, "no such user"),
        "editor@example.org": (550, "no such user"),
    }
    with pytest.raises(AlertError) as e:
        await email.send(mailbox(smtp.port), sample_digest(), name="team")
    assert e.value.permanent
    assert "desk@example.org (550)" in str(e.value)


async def test_some_recipients_refused_still_delivers_to_the_rest(smtp: SMTPTestServer) -> None:
    smtp.reject_rcpt = {"editor@example.org": (550, "no such user")}
    await email.send(mailbox(smtp.port), sample_digest(), name="team")
    assert [d.rcpt_tos for d in smtp.delivered] == [("desk@example.org",)]


async def test_unreachable_server_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AlertError) as e:
        await email.send(mailbox(port), sample_digest(), name="team")
    assert not e.value.permanent


async def test_starttls_with_login(tls: tuple[Path, ssl.SSLContext]) -> None:
    ca_file, context = tls
    with SMTPTestServer(starttls=context, logins={"watcher": "pw"}) as server:
        ch = mailbox(
            server.port, security="starttls", username="watcher", password="pw", ca_file=str(ca_file)
        )
        await email.send(ch, sample_digest(), name="team")
        (delivered,) = server.delivered
    assert delivered.tls
    assert delivered.login == "watcher"


async def test_wrong_password_is_permanent(tls: tuple[Path, ssl.SSLContext]) -> None:
    ca_file, context = tls
    with SMTPTestServer(starttls=context, logins={"watcher": "pw"}) as server:
        ch = mailbox(
            server.port, security="starttls", username="watcher", password="no", ca_file=str(ca_file)
        )
        with pytest.raises(AlertError) as e:
            await email.send(ch, sample_digest(), name="team")
        assert server.delivered == []
    assert e.value.permanent
    assert "login refused: 535" in str(e.value)
    assert "no" not in str(e.value).split(":", 1)[0]


async def test_untrusted_certificate_is_permanent(tls: tuple[Path, ssl.SSLContext]) -> None:
    _, context = tls
    with SMTPTestServer(starttls=context) as server:
        with pytest.raises(AlertError) as e:
            await email.send(mailbox(server.port, security="starttls"), sample_digest(), name="team")
        assert server.delivered == []
    assert e.value.permanent
    assert "certificate not trusted" in str(e.value)


async def test_starttls_required_but_not_offered_is_permanent(smtp: SMTPTestServer) -> None:
    with pytest.raises(AlertError) as e:
        await email.send(mailbox(smtp.port, security="starttls"), sample_digest(), name="team")
    assert e.value.permanent
    assert "STARTTLS" in str(e.value)
    assert smtp.delivered == []


async def test_implicit_tls(tls: tuple[Path, ssl.SSLContext]) -> None:
    ca_file, context = tls
    with SMTPTestServer(implicit_tls=context) as server:
        await email.send(
            mailbox(server.port, security="tls", ca_file=str(ca_file)), sample_digest(), name="t"
        )
        (delivered,) = server.delivered
    assert delivered.tls


def test_default_ports_follow_security() -> None:
    assert [mailbox(0, smtp_port=None, security=s).port for s in ("starttls", "tls", "none")] == [
        587,
        465,
        25,
    ]


def test_password_never_shows_in_the_channel_repr() -> None:
    ch = mailbox(25, username="u", password="hunter2")
    assert "hunter2" not in repr(ch)
    assert "hunter2" not in str(ch.model_dump())
