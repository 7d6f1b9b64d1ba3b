"""E-mail sender: one multipart/alternative message (text + HTML) per digest, over SMTP.

smtplib blocks, so delivery runs in a worker thread. Failure mapping: SMTP 4xx replies, dropped
connections, timeouts and unreachable hosts are transient; 5xx replies, refused logins, a server without
STARTTLS and an untrusted certificate are permanent (retrying cannot fix the config).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from watcher.channels import EmailChannel
from watcher.digest import Digest, email_subject, render_html, render_text
from watcher.errors import AlertError

log = logging.getLogger(__name__)


def build_message(channel: EmailChannel, digest: Digest) -> EmailMessage:
    """The complete message; pure apart from the random part of Message-ID."""
    msg = EmailMessage()
    msg["Subject"] = email_subject(digest, channel.subject_prefix)
    msg["From"] = channel.from_
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = format_datetime(digest.generated_at)
    domain = parseaddr(channel.from_)[1].rpartition("@")[2] or "watcher.invalid"
    # An explicit domain: make_msgid's default asks the resolver for this host's FQDN, which can hang.
    msg["Message-ID"] = make_msgid(idstring="watcher", domain=domain)
    # RFC 3834: tells auto-responders (vacation replies) not to answer a machine.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Watcher-Topic"] = digest.topic
    msg.set_content(render_text(digest))
    msg.add_alternative(render_html(digest), subtype="html")
    return msg


def _permanent_code(code: int) -> bool:
    return code >= 500


def _deliver(channel: EmailChannel, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
    context = ssl.create_default_context(cafile=channel.ca_file)
    smtp: smtplib.SMTP
    if channel.security == "tls":
        smtp = smtplib.SMTP_SSL(channel.smtp_host, channel.port, timeout=channel.timeout, context=context)
    else:
        smtp = smtplib.SMTP(channel.smtp_host, channel.port, timeout=channel.timeout)
    try:
        smtp.ehlo()
        if channel.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if channel.username:
            password = channel.password.get_secret_value() if channel.password else ""
            smtp.login(channel.username, password)
        refused = smtp.send_message(msg)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            # The message (if sent) is already accepted; a rude goodbye must not turn into a resend.
            smtp.close()
    return refused


def _alert(name: str, e: Exception) -> AlertError:
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in e.recipients.values()]
        shown = ", ".join(f"{addr} ({code})" for addr, (code, _) in e.recipients.items())
        return AlertError(
            name, f"all recipients refused: {shown}", permanent=all(map(_permanent_code, codes))
        )
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        what = "login refused" if isinstance(e, smtplib.SMTPAuthenticationError) else "SMTP error"
        return AlertError(name, f"{what}: {e.smtp_code} {text}", permanent=_permanent_code(e.smtp_code))
    if isinstance(e, smtplib.SMTPNotSupportedError):
        hint = "set security = 'tls' or 'none'" if "STARTTLS" in str(e) else "remove username/password"
        return AlertError(name, f"server does not support it: {e} ({hint})", permanent=True)
    if isinstance(e, ssl.SSLCertVerificationError):
        message = f"TLS certificate not trusted: {e.verify_message}; set ca_file for a private CA"
        return AlertError(name, message, permanent=True)
    if isinstance(e, ssl.SSLError):
        return AlertError(
            name, f"TLS failed: {e.reason}; check security (starttls | tls | none)", permanent=True
        )
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return AlertError(name, f"server closed the connection: {e}")
    if isinstance(e, TimeoutError):
        return AlertError(name, "timed out talking to the SMTP server")
    return AlertError(name, f"could not send: {type(e).__name__}: {e}")


async def send(channel: EmailChannel, digest: Digest, *, name: str = "email", skip_parts: int = 0) -> int:
    """Send ``digest`` as one e-mail to every address in ``channel.to``; returns the number of parts (1)."""
    if skip_parts >= 1:
        return 1
    msg = build_message(channel, digest)
    try:
        refused = await asyncio.to_thread(_deliver, channel, msg)
    except (smtplib.SMTPException, OSError) as e:
        raise _alert(name, e) from e
    if refused:
        # Some recipients got it: a retry would duplicate theirs, so this is logged rather than raised.
        log.warning("channel=%s topic=%s recipients refused: %s", name, digest.topic, ", ".join(refused))
    log.info("channel=%s topic=%s delivered e-mail digest (%d stories)", name, digest.topic, digest.count)
    return 1
