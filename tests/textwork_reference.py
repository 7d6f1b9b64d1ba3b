"""Frozen copies of Watcher's per-item text work as of commit 04c4341, before it was tuned for speed:
``htmltext.plain_text`` (with ``html_to_text``), ``urls.canonical_url`` and ``normalise.absolute_link``.

tests/test_textwork_speed.py holds the live code to these: every output must stay identical, since canonical
URLs and item text are stored and compared across versions. Keep this file as it is: it is the definition the
fast code must meet, not code to maintain.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

# --- watcher/htmltext.py ---

# \x0b and \x0c are whitespace in HTML and in Python's str.split(), so they become spaces rather than vanish.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_VTAB_FF = re.compile("[\x0b\x0c]")
# Tag names that make plain-typed text "really HTML". A generic "<word" test would also eat literal text such
# as "the <feed> element" or "a<b", which feeds legitimately put in plain titles.
_HTML_TAGS = (
    "a abbr acronym address article aside audio b big blockquote body br button center cite code dd "
    "del details dfn div dl dt em embed figcaption figure font footer form h1 h2 h3 h4 h5 h6 head "
    "header hr html i iframe img input ins kbd label li link main mark meta nav noscript object ol "
    "option p picture pre q s samp script section select small source span strike strong style sub "
    "summary sup svg table tbody td template textarea tfoot th thead time title tr tt u ul var "
    "video wbr"
)
_MARKUP = re.compile(
    r"<(?:/?(?:" + "|".join(_HTML_TAGS.split()) + r")(?=[\s/>])|!--)"
    r"|&(?:#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});",
    re.IGNORECASE,
)

ELLIPSIS = "…"

# Elements whose boundaries separate words or lines. Inline elements (<b>, <a>, <span>) join their text to the
# neighbours' ("<b>Vu</b>čić" is one word), so only these insert a break.
_BLOCK = frozenset(
    "address article aside blockquote br dd details div dl dt figcaption figure footer form h1 h2 h3 h4 h5 "
    "h6 header hr li main nav ol p pre section summary table tbody thead tfoot tr ul".split()
)
_CELL = frozenset({"td", "th"})
# html.parser already treats script/style bodies as raw text (CDATA_CONTENT_ELEMENTS), so skipping them is a
# flag, not a depth counter that an unclosed tag could leave stuck.
_SKIP = frozenset({"script", "style"})
_FEED_CHUNK = 65_536


def clean(s: str) -> str:
    """``s`` without control characters, lone surrogates or non-characters; CR/CRLF become LF."""
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _VTAB_FF.sub(" ", s)
    return _CONTROL.sub("", s)


def collapse_inline(s: str) -> str:
    """All runs of whitespace (line breaks included) become one space: for titles, names, one-liners."""
    return " ".join(s.split())


def collapse_block(s: str) -> str:
    """Whitespace collapsed within each line; blank lines dropped, so paragraphs are separated by one LF."""
    lines = (" ".join(line.split()) for line in s.split("\n"))
    return "\n".join(line for line in lines if line)


def truncate(s: str, limit: int) -> str:
    """``s`` cut to at most ``limit`` characters, ending in an ellipsis when something was cut."""
    if len(s) <= limit:
        return s
    return s[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def looks_like_markup(s: str) -> bool:
    """True when ``s`` holds something tag-like or an entity, i.e. plain-typed text that is really HTML."""
    return _MARKUP.search(s) is not None


class _TextExtractor(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self._skipping: str | None = None

    @property
    def full(self) -> bool:
        return self.size > self.limit

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping = tag
        elif tag in _BLOCK:
            self._emit("\n")
        elif tag in _CELL:
            self._emit(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>: a break but never the start of a skipped region (<script/> has no body).
        if tag in _BLOCK:
            self._emit("\n")
        elif tag in _CELL:
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._skipping:
            self._skipping = None
        elif tag in _BLOCK:
            self._emit("\n")
        elif tag in _CELL:
            self._emit(" ")

    def handle_data(self, data: str) -> None:
        if self._skipping is None:
            self._emit(data)

    def _emit(self, text: str) -> None:
        if not self.full:
            self.parts.append(text)
            self.size += len(text)


def html_to_text(html: str, *, limit: int, inline: bool = False) -> str:
    """Plain text of an HTML fragment: tags dropped, <script>/<style> bodies dropped, entities decoded,
    block elements turned into line breaks (or spaces when ``inline``), whitespace collapsed, at most
    ``limit`` characters (ellipsis when cut).

    Input beyond ten times the limit is ignored unparsed: markup rarely outweighs its text tenfold, and it
    bounds the work for hostile inputs.
    """
    html = html[: max(limit * 10, 10_000)]
    parser = _TextExtractor(limit)
    for start in range(0, len(html), _FEED_CHUNK):
        parser.feed(html[start : start + _FEED_CHUNK])
        if parser.full:
            break
    else:
        parser.close()
    text = clean("".join(parser.parts))
    text = collapse_inline(text) if inline else collapse_block(text)
    return truncate(text, limit)


def plain_text(value: str | None, *, is_html: bool, limit: int, inline: bool = False) -> str:
    """The plain text of a feed field: HTML-typed values, and plain-typed values that evidently hold markup,
    go through :func:`html_to_text`; the rest are only cleaned, collapsed and capped."""
    if not value:
        return ""
    if is_html or looks_like_markup(value[: limit * 10]):
        return html_to_text(value, limit=limit, inline=inline)
    value = clean(value[: limit * 2])
    value = collapse_inline(value) if inline else collapse_block(value)
    return truncate(value, limit)


# --- watcher/urls.py ---

# Exact parameter names (compared lower-cased) that only say how a reader arrived.
_TRACKING = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
        "igshid", "igsh", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "spm", "scm",
        "cmpid", "cmp", "ito", "icid", "ocid", "ref", "ref_src", "ref_url", "referrer", "smid",
        "xtor", "s_cid", "sr_share", "vero_id", "oly_enc_id", "oly_anon_id", "rb_clickid", "wt.mc_id",
        "fb_action_ids", "fb_action_types", "fb_ref", "fb_source", "action_object_map",
        "action_type_map", "action_ref_map", "__twitter_impression", "guccounter", "ns_mchannel",
        "ns_source", "ns_campaign", "ns_linkname", "ns_fee", "at_medium", "at_campaign", "socialshare",
    }
)  # fmt: skip
# Deliberately kept: names like "from", "src", "feed", "share" or "id" also select content on some sites,
# and merging two different pages is worse than missing a duplicate.
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")
# Parameters that ask for the AMP rendering of the same page: folded away like the AMP path forms.
_AMP_PARAMS = {"amp": {"", "1", "true", "yes"}, "outputtype": {"amp"}, "output": {"amp"}}
_HOST_PREFIXES = ("www.", "www1.", "www2.", "m.", "mobile.", "amp.")
_AMP_CACHE = re.compile(r"^/[cv]/(s/)?(?P<rest>[^/]+\..+)$")  # *.cdn.ampproject.org/c/s/host/path
_GOOGLE_AMP = re.compile(r"^/amp/(s/)?(?P<rest>[^/]+\..+)$")  # www.google.com/amp/s/host/path
_CANONICAL_SCHEME = "https"


def _is_tracking(name: str) -> bool:
    low = name.lower()
    return low in _TRACKING or low.startswith(_TRACKING_PREFIXES)


def _is_amp_param(name: str, value: str) -> bool:
    allowed = _AMP_PARAMS.get(name.lower())
    return allowed is not None and value.lower() in allowed


def _strip_host(host: str) -> str:
    host = host.rstrip(".")
    changed = True
    while changed:
        changed = False
        for prefix in _HOST_PREFIXES:
            # keep at least "name.tld": "m.com" is a domain, not a mobile host
            if host.startswith(prefix) and host.count(".") >= 2:
                host = host[len(prefix) :]
                changed = True
    return host


def _idna(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        # labels the codec refuses (too long, odd characters): keep them percent-free but lower-cased
        return quote(host.lower(), safe=".-_~!$&'()*+,;=:[]")


def _fold_amp_path(path: str) -> str:
    segments = [s for s in path.split("/") if s.lower() != "amp"]
    if segments:
        last = segments[-1]
        low = last.lower()
        if low.endswith(".amp"):
            segments[-1] = last[: -len(".amp")]
        elif low.endswith((".amp.html", ".amp.htm")):
            segments[-1] = last[: low.rindex(".amp.")] + last[low.rindex(".amp.") + len(".amp") :]
    folded = "/".join(segments)
    return folded if folded.startswith("/") else "/" + folded


def _unwrap_amp_cache(host: str, path: str) -> str | None:
    """The publisher URL hidden inside an AMP cache or Google AMP viewer link, else None."""
    pattern = None
    if host.endswith(".cdn.ampproject.org"):
        pattern = _AMP_CACHE
    elif host in ("google.com", "www.google.com"):
        pattern = _GOOGLE_AMP
    match = pattern.match(path) if pattern else None
    return "https://" + match.group("rest") if match else None


def canonical_url(url: str) -> str:
    """One spelling per page: equal results mean the links lead to the same article.

    Never raises: input that cannot be parsed as a web URL comes back stripped of surrounding space.
    """
    try:
        return _canonical(url.strip(), depth=0)
    except Exception:  # garbage in, best effort out: the caller compares strings, nothing more
        return url.strip() if isinstance(url, str) else ""


def _canonical(url: str, *, depth: int) -> str:
    if not url:
        return ""
    if url.startswith("//"):
        url = "http:" + url
    elif "://" not in url and re.match(r"^[\w.-]+\.[a-z]{2,}(?:[/:?#]|$)", url, re.IGNORECASE):
        url = "http://" + url  # "example.com/news/1", as people paste them
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return url
    host = _strip_host(_idna(parts.hostname))
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal: hostname dropped the brackets the netloc needs
    path = parts.path or "/"
    if depth < 3:
        inner = _unwrap_amp_cache(host, path)
        if inner is not None:
            return _canonical(inner, depth=depth + 1)
    port = parts.port  # ValueError on a non-numeric port: caught by canonical_url
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = _fold_amp_path(re.sub(r"/{2,}", "/", path))
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(k) and not _is_amp_param(k, v)
    ]
    fragment = parts.fragment if parts.fragment.startswith("!") else ""  # "#!/story/12" routes pages
    rebuilt = urlunsplit(("http", netloc, path, urlencode(query), ""))
    norm = urlsplit(canonicalize_url(rebuilt))
    path = norm.path.rstrip("/")
    return urlunsplit((_CANONICAL_SCHEME, norm.netloc, path, norm.query, fragment))


# --- watcher/normalise.py ---

LINK_LIMIT = 4_000


def absolute_link(link: str | None, base: str | None) -> str | None:
    """``link`` resolved against ``base``; None unless the result is an http(s) URL with a host.

    javascript:, data:, file: and the like are dropped, not escaped: a link is only ever followed.
    """
    if not link:
        return None
    link = "".join(clean(link[: LINK_LIMIT * 2]).split())  # feeds wrap long URLs over several lines
    if not link or len(link) > LINK_LIMIT:
        return None
    try:
        own = urlsplit(link)
        if own.scheme and not own.hostname:
            return (
                None  # "https://" or "javascript:x": urljoin would quietly return the base for some of these
            )
        resolved = urljoin(base, link) if base else link
        parts = urlsplit(resolved)
    except ValueError:  # e.g. an invalid IPv6 literal "http://[::1"
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return resolved
