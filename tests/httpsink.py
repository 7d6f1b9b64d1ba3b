"""A POST-recording HTTP server on 127.0.0.1:0 standing in for Slack and generic webhooks.

    with HttpSink() as sink:
        sink.slack("/hook")                          # check Block Kit limits like Slack: 400 invalid_blocks
        sink.reply("/hook", 429, "rate_limited", {"Retry-After": "30"})   # every request from now on
        sink.script("/hook", [Reply(200), Reply(500, "oops")])            # then these, once each, in order
        sink.url("/hook"); sink.received("/hook")    # what arrived (recorded before the answer is sent)
        sink.wait_received(3)                        # block until 3 POSTs arrived (any path), or TimeoutError

Unknown paths answer 404 "no_service", which is what Slack says for a deleted webhook.
`block_kit_problems` and `mrkdwn_hazards` are usable directly on payloads in tests.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 40_000
_KNOWN_BLOCKS = {"header", "section", "context", "divider"}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    problems: tuple[str, ...] = ()  # Block Kit violations, for Slack paths

    def json(self) -> Any:
        return json.loads(self.body)


def _text_problems(where: str, obj: Any, *, limit: int, kinds: set[str]) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where}: text object must have type in {sorted(kinds)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: text must be a non-empty string"]
    if len(text) > limit:
        return [f"{where}: text is {len(text)} characters, limit {limit}"]
    return []


def block_kit_problems(payload: Any) -> list[str]:
    """What Slack would reject in an incoming-webhook payload (the limits we rely on, not all of them)."""
    if not isinstance(payload, dict):
        return ["payload is not a JSON object"]
    problems: list[str] = []
    text = payload.get("text")
    if not isinstance(text, str) or not text:
        problems.append("missing top-level text fallback")
    elif len(text) > MAX_FALLBACK_TEXT:
        problems.append(f"text fallback is {len(text)} characters")
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list) or not blocks:
        return [*problems, "blocks must be a non-empty list"]
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks, limit {MAX_BLOCKS}")
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"blocks[{i}] ({kind})"
        if kind not in _KNOWN_BLOCKS:
            problems.append(f"{where}: unknown block type")
        elif kind == "header":
            problems += _text_problems(where, block.get("text"), limit=MAX_HEADER_TEXT, kinds={"plain_text"})
        elif kind == "section":
            problems += _text_problems(
                where, block.get("text"), limit=MAX_SECTION_TEXT, kinds={"plain_text", "mrkdwn"}
            )
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                problems.append(f"{where}: needs 1..{MAX_CONTEXT_ELEMENTS} elements")
            else:
                for j, e in enumerate(elements):
                    problems += _text_problems(
                        f"{where}.elements[{j}]", e, limit=MAX_SECTION_TEXT, kinds={"plain_text", "mrkdwn"}
                    )
    return problems


_LINK = re.compile(r"<(https?://[^|<>\s]+)\|([^<>]*)>")


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """Every string Slack would parse as mrkdwn in ``payload`` (fallback text included)."""
    texts = [payload.get("text", "")]
    for block in payload.get("blocks", []):
        objs = [block.get("text")] if "text" in block else list(block.get("elements", []))
        texts += [o["text"] for o in objs if isinstance(o, dict) and o.get("type") == "mrkdwn"]
    return texts


def mrkdwn_hazards(text: str, allowed_urls: set[str] | None = None) -> list[str]:
    """Control sequences in ``text`` that we did not intend: a `<` or `>` that is neither part of a
    well-formed http(s) link nor a line-leading quote (so no `<!channel>`, `<@U…>`, `<#C…>`), a link to a
    URL outside ``allowed_urls`` (a forged `<http://evil|click>`), and any bare `&`."""
    hazards: list[str] = []
    for m in _LINK.finditer(text):
        url = m.group(1).replace("&amp;", "&")
        if allowed_urls is not None and url not in allowed_urls:
            hazards.append(f"link to an unexpected URL: {m.group(0)!r}")
    rest = re.sub(r"^> ", "", _LINK.sub("", text), flags=re.MULTILINE)  # our own block quotes
    if "<" in rest or ">" in rest:
        hazards.append(f"unescaped < or > outside a link: {rest!r}")
    if re.search(r"&(?!(amp|lt|gt);)", text):
        hazards.append(f"bare & (not an entity): {text!r}")
    return hazards


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        sink = self.server.sink
        reply, problems = sink._answer(self.path, body)
        sink._record(
            Received(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                problems=tuple(problems),
            )
        )
        data = reply.body.encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, sink: HttpSink) -> None:
        self.sink = sink
        super().__init__(("127.0.0.1", 0), _Handler)


class HttpSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._defaults: dict[str, Reply] = {}
        self._scripts: dict[str, deque[Reply]] = {}
        self._slack: set[str] = set()
        self._received: list[Received] = []
        self._server = _Server(self)
        # A short poll interval: shutdown() waits for the loop to notice, and tests tear down often.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="httpsink", daemon=True
        )

    def __enter__(self) -> HttpSink:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reply(
        self, path: str, status: int = 200, body: str = "ok", headers: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self._defaults[path] = Reply(status, body, headers or {})

    def script(self, path: str, replies: list[Reply]) -> None:
        with self._lock:
            self._defaults.setdefault(path, Reply())
            self._scripts[path] = deque(replies)

    def slack(self, path: str) -> None:
        """Answer like a Slack incoming webhook: 200 ok, or 400 invalid_blocks on a Block Kit violation."""
        with self._lock:
            self._defaults.setdefault(path, Reply())
            self._slack.add(path)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait_received(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` POSTs (to ``path``, or to any path) arrived; TimeoutError after ``timeout``."""

        def enough() -> bool:
            return sum(path is None or r.path == path for r in self._received) >= count

        with self._arrived:
            if not self._arrived.wait_for(enough, timeout):
                raise TimeoutError(
                    f"{count} POST(s) to {path or 'any path'} did not arrive within {timeout}s"
                )
            return [r for r in self._received if path is None or r.path == path]

    def _record(self, r: Received) -> None:
        with self._arrived:
            self._received.append(r)
            self._arrived.notify_all()

    def _answer(self, path: str, body: bytes) -> tuple[Reply, list[str]]:
        with self._lock:
            problems: list[str] = []
            if path in self._slack:
                try:
                    problems = block_kit_problems(json.loads(body))
                except ValueError:
                    problems = ["body is not JSON"]
            script = self._scripts.get(path)
            if script:
                return script.popleft(), problems
            if problems:
                return Reply(400, "invalid_blocks"), problems
            return self._defaults.get(path, Reply(404, "no_service")), problems
