"""Canonical article URLs, so copies of one page reached through different links compare equal.

Percent-encoding, dot segments, IDN hosts and query sorting are delegated to w3lib's
``canonicalize_url`` (Scrapy's URL library: typed, no dependencies, tested against years of crawled
garbage). url-normalize needs a newer idna than httpx pins here, and courlan pulls in babel and tld for
language and domain heuristics we do not want. What w3lib leaves alone is done here: one scheme,
mobile/AMP hosts and paths, default ports, tracking parameters, trailing slashes and AMP cache wrappers.

No network: redirects and <link rel=canonical> are out of reach by design.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

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
# The shape of nearly every feed's links: lower-case http(s), an ASCII host of 1-63 character labels, no
# port or user, a path of characters w3lib keeps as they are (no "%", ";" or "|") or percent-encodes as UTF-8
# (any non-ASCII one but a lone surrogate), a query of plain name=value pairs and any printable ASCII
# fragment. For it _plain_canonical gives canonical_url's answer without the parse, IDNA, quote and unquote
# rounds. Path dot segments are checked after AMP folding.
_PATH_KEEP = "-._~!$&'()*+,=:@/"
_PLAIN_URL = re.compile(
    r"(https?)://([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*)"
    r"(/[-A-Za-z0-9._~!$&'()*+,=:@/\x80-\ud7ff\ue000-\U0010ffff]*)?"
    r"(?:\?([-A-Za-z0-9._~=&]*))?"
    r"(?:#([!-~]*))?"
)
_SLASHES = re.compile(r"/{2,}")


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
        url = url.strip()
        return _plain_canonical(url) or _canonical(url, depth=0)
    except Exception:  # garbage in, best effort out: the caller compares strings, nothing more
        return url.strip() if isinstance(url, str) else ""


def _plain_canonical(url: str) -> str | None:
    """canonical_url of a URL of the common shape (_PLAIN_URL), computed directly; None for any other URL.

    Each step matches one of _canonical's: for such input urlsplit, the IDNA codec and parse_qsl change
    nothing but the host's case, urlencode and w3lib's own query round keep every name and value as it is
    and only sort the pairs, and w3lib's path quoting and dot-segment removal leave the path alone.
    """
    m = _PLAIN_URL.fullmatch(url)
    if m is None:
        return None
    host = _strip_host(m.group(2).lower())
    path = m.group(3) or "/"
    if _unwrap_amp_cache(host, path) is not None:
        return None
    if "//" in path or "amp" in path.lower():
        path = _fold_amp_path(_SLASHES.sub("/", path))
    if "/." in path:
        return None  # dot segments: w3lib resolves them
    if not path.isascii():
        path = quote(path, safe=_PATH_KEEP)  # UTF-8, upper-case hex: w3lib's spelling
    query = ""
    if m.group(4):
        pairs = []
        for field in m.group(4).split("&"):
            if field:
                name, _, value = field.partition("=")
                if "=" in value:
                    return None  # urlencode would escape it
                if not _is_tracking(name) and not _is_amp_param(name, value):
                    pairs.append((name, value))
        pairs.sort()
        query = "&".join(f"{name}={value}" for name, value in pairs)
    fragment = m.group(5)
    canon = f"{_CANONICAL_SCHEME}://{host}{path.rstrip('/')}"
    if query:
        canon += "?" + query
    if fragment and fragment.startswith("!"):
        canon += "#" + fragment
    return canon


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


def url_host(url: str) -> str:
    """The canonical host ("balkanwire.example" for https://www.balkanwire.example/x), or "" if none."""
    try:
        return urlsplit(canonical_url(url)).hostname or ""
    except ValueError:
        return ""
