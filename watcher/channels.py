"""Alert channels as the config declares them: `[channels.NAME]` tables, one pydantic model per `type`.

The config loader expands `${ENV}` before validation and keys channels by NAME; the models do not hold
their own name (the table key is the single source), so senders take it as an argument for error messages.
Secrets (SMTP password, webhook signing secret) are `SecretStr` so `watcher check` and reprs never show them.
A channel may override the topic's `digest`/`timezone`/`heartbeat`; `channel_schedule` resolves that.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from watcher.units import parse_duration

if TYPE_CHECKING:
    from watcher.schedule import Schedule

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def _seconds(v: Any) -> Any:
    """Timeouts read like the rest of the config ("10s", "1m") or as bare numbers of seconds."""
    return parse_duration(v) if isinstance(v, str) else v


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0, le=600)]


def _http_url(v: str) -> str:
    v = v.strip()
    if not re.match(r"^https?://[^/\s]+", v, re.IGNORECASE):
        raise ValueError("must be an http:// or https:// URL")
    if re.search(r"\s", v):
        raise ValueError("must not contain spaces")
    return v


def _address(v: str) -> str:
    """One mailbox, `a@b` or `Name <a@b>`; CR/LF and commas are refused so no header can be injected."""
    v = v.strip()
    if any(c in v for c in "\r\n,;"):
        raise ValueError(f"not a single e-mail address: {v!r}")
    _, addr = parseaddr(v)
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", addr):
        raise ValueError(f"not an e-mail address: {v!r}")
    return v


class _ChannelBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    digest: str | None = None  # overrides the topic's schedule for this channel
    timezone: str | None = None  # overrides the topic's timezone for this channel
    heartbeat: bool | None = None  # overrides the topic's heartbeat (send "0 new stories" digests)
    timeout: Seconds = 30.0

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is None:
            return None
        # imported here: APScheduler's cron machinery costs every command ~35 ms of start-up otherwise
        from watcher.schedule import check_schedule

        return check_schedule(v)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        if v is None:
            return None
        from watcher.schedule import check_timezone

        return check_timezone(v)


class SlackChannel(_ChannelBase):
    """A Slack incoming webhook (the URL is the secret: keep it in `${SLACK_WEBHOOK_URL}`)."""

    type: Literal["slack"]
    webhook_url: SecretStr
    timeout: Seconds = 10.0

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        return SecretStr(_http_url(v.get_secret_value()))


class EmailChannel(_ChannelBase):
    type: Literal["email"]
    smtp_host: str = Field(min_length=1)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)  # default: 587 / 465 / 25 by security
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None  # log in only when set (an unset ${ENV} expanding to "" counts as unset)
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: tuple[str, ...] = Field(min_length=1)
    ca_file: str | None = None  # PEM bundle to trust instead of the system store (private relays)
    subject_prefix: str = "[Watcher]"

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @field_validator("to")
    @classmethod
    def _to(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(a) for a in v)

    @field_validator("from_")
    @classmethod
    def _from(cls, v: str) -> str:
        return _address(v)

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("password")
    @classmethod
    def _password(cls, v: SecretStr | None) -> SecretStr | None:
        return v if v is not None and v.get_secret_value() else None

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if any(c in v for c in "\r\n"):
            raise ValueError("must be one line")
        return v

    @model_validator(mode="after")
    def _login_pair(self) -> EmailChannel:
        if self.password is not None and not self.username:
            raise ValueError("a password is set but no username")
        return self

    @property
    def port(self) -> int:
        return self.smtp_port or _DEFAULT_PORTS[self.security]


class WebhookChannel(_ChannelBase):
    """A generic JSON POST of `digest.webhook_payload`; `secret` adds an HMAC-SHA256 body signature."""

    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, str] = {}
    secret: SecretStr | None = None
    timeout: Seconds = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        return SecretStr(_http_url(v.get_secret_value()))

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name) or any(c in value for c in "\r\n"):
                raise ValueError(f"not a valid HTTP header: {name!r}")
        return v


class ConsoleChannel(_ChannelBase):
    """Plain-text digests on stdout and/or appended to a file (relative paths: from the working dir)."""

    type: Literal["console"]
    file: str | None = None
    stdout: bool = True

    @model_validator(mode="after")
    def _somewhere(self) -> ConsoleChannel:
        if not self.stdout and not self.file:
            raise ValueError("stdout = false needs a file, or the digest goes nowhere")
        return self


ChannelConfig = Annotated[
    SlackChannel | EmailChannel | WebhookChannel | ConsoleChannel, Field(discriminator="type")
]
AnyChannel = SlackChannel | EmailChannel | WebhookChannel | ConsoleChannel


def channel_schedule(channel: AnyChannel, *, digest: str, timezone: str) -> tuple[Schedule, str]:
    """The schedule and IANA zone a channel delivers a topic on: the channel's override, else the topic's."""
    from watcher.schedule import parse_schedule

    return parse_schedule(channel.digest or digest), channel.timezone or timezone


def channel_heartbeat(channel: AnyChannel, *, heartbeat: bool) -> bool:
    """Whether empty digests go to this channel: the channel's override, else the topic's setting."""
    return heartbeat if channel.heartbeat is None else channel.heartbeat
