"""OPML in and out: reading odd real-world lists, writing valid OPML 2.0, the import/export commands, the
config appender, and OPML files named by the configuration."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.clihelp import cli
from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.feedfile import append_feeds, toml_string
from watcher.opml import FeedEntry, OpmlError, feed_url, load_opml, read_opml, write_opml

DATA = Path(__file__).resolve().parent / "data"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _config(tmp_path: Path, body: str = "") -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'# the desk\'s config: keep this comment\n[watcher]\ndatabase = "{tmp_path.as_posix()}/w.db"\n{body}',
        encoding="utf-8",
    )
    return path


def _outline_doc(body: str) -> bytes:
    return f'<?xml version="1.0"?><opml version="2.0"><head/><body>{body}</body></opml>'.encode()


# --- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "tags"),
    [
        ('<outline text="a" xmlUrl="http://x.example/f"/>', ()),
        ('<outline text="News"><outline text="a" xmlUrl="http://x.example/f"/></outline>', ("News",)),
        (
            '<outline text="News"><outline title="Balkans"><outline text="a" xmlUrl="http://x.example/f"/>'
            "</outline></outline>",
            ("News", "Balkans"),
        ),
        # OPML 2.0 categories: slash paths, comma separated; folder tags follow them, without repeats
        (
            '<outline text="News"><outline text="a" xmlUrl="http://x.example/f" category="/sr,/News/Serbia"/>'
            "</outline>",
            ("sr", "News", "Serbia"),
        ),
        # a folder without a title adds nothing
        ('<outline text=""><outline text="a" xmlUrl="http://x.example/f"/></outline>', ()),
    ],
)
def test_nested_outlines_become_tags(body: str, tags: tuple[str, ...]) -> None:
    subs = read_opml(_outline_doc(body), "test.opml")
    assert [f.tags for f in subs.feeds] == [tags]


def test_reads_a_readers_export_with_nested_folders() -> None:
    subs = load_opml(DATA / "subscriptions.opml")
    assert subs.version == "opml2"
    assert subs.title == "Desk subscriptions"
    assert {f.name: f.tags for f in subs.feeds} == {
        "N1 Srbija": ("Balkans", "Serbia"),
        "Вести РТС": ("Balkans", "Serbia"),
        "Danas": ("sr", "Balkans", "Serbia"),
        "Balkan Insight": ("en", "long reads", "Balkans"),
        "Defense News": ("Defence",),
        "Reuters World": (),
    }
    assert not subs.skipped


def test_odd_real_world_list() -> None:
    subs = load_opml(DATA / "odd.opml")
    assert subs.version == "opml1"
    by_url = {f.url: f for f in subs.feeds}
    assert list(by_url) == [
        "https://www.lemonde.fr/international/rss_full.xml",
        "https://untitled.example/rss",
        "http://oldschool.example/rss.xml",  # feed:// is an old spelling of http://
        "https://nameless.example/atom.xml",
        "https://spaces.example/feed",
    ]
    lemonde = by_url["https://www.lemonde.fr/international/rss_full.xml"]
    assert lemonde.name == "Le Monde – International"  # HTML entities decoded, non-ASCII kept
    assert lemonde.tags == ("Café & Société",)
    assert by_url["https://nameless.example/atom.xml"].name is None  # a name that is the URL is no name
    assert by_url["https://spaces.example/feed"].name == "Tab and newline name"
    reasons = {s.title: s.reason for s in subs.skipped}
    assert reasons["Le Monde (again)"].startswith("the same feed as https://www.lemonde.fr/")
    assert reasons["Script"] == "not an http(s) URL"
    assert "another subscription list" in reasons["A friend's list"]
    # the outline without xmlUrl is a folder to listparser, never a feed
    assert not any("example.org" in f.url for f in subs.feeds)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>',
        b"<html><body>hi</body></html>",
    ],
)
def test_anything_but_opml_is_an_error_naming_the_file(data: bytes) -> None:
    with pytest.raises(OpmlError, match=r"^list\.opml: "):
        read_opml(data, "list.opml")


def test_entities_are_never_expanded_nor_files_read() -> None:
    laughs = "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' if i else '<!ENTITY l0 "lol">' for i in range(10)
    )
    doc = (
        f'<?xml version="1.0"?><!DOCTYPE opml [{laughs}<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<opml version="2.0"><body><outline text="&l9;" xmlUrl="http://a.example/&x;"/></body></opml>'
    )
    subs = read_opml(doc.encode(), "laughs.opml")
    assert len(subs.feeds) == 1
    assert len(subs.feeds[0].name or "") < 100
    assert "root:" not in subs.feeds[0].url


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OpmlError, match=r"nothing\.opml: cannot read"):
        load_opml(tmp_path / "nothing.opml")


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("https://a.example/f", "https://a.example/f"),
        ("  http://a.example/f ", "http://a.example/f"),
        ("feed://a.example/f", "http://a.example/f"),
        ("feed:https://a.example/f", "https://a.example/f"),
        ("javascript:alert(1)", None),
        ("/relative/feed.xml", None),
        ("ftp://a.example/f", None),
    ],
)
def test_feed_url(raw: str, url: str | None) -> None:
    assert feed_url(raw) == url


# --- writing ---------------------------------------------------------------------------------------


def test_written_opml_is_valid_xml_and_escapes_names() -> None:
    feeds = [
        FeedEntry(url="https://a.example/f?x=1&y=2", name='<b>"Tom" & Jerry</b>\x01', tags=("A & B",)),
        FeedEntry(url="https://b.example/f", name=None, tags=("A & B", "x/y", "z")),
        FeedEntry(url="https://c.example/f"),
    ]
    data = write_opml(feeds, title="Mine & yours", created=T0)
    root = ET.fromstring(data)  # well-formed
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == "Mine & yours"
    folder = root.find("body/outline[@text='A & B']")
    assert folder is not None and [o.get("xmlUrl") for o in folder] == [
        "https://a.example/f?x=1&y=2",
        "https://b.example/f",
    ]
    assert folder[0].get("text") == '<b>"Tom" & Jerry</b>'  # control character dropped, markup kept as text
    assert folder[1].get("text") == "https://b.example/f"  # OPML needs a text; the URL stands in
    assert folder[1].get("category") == "/A & B,/z"  # a tag with "/" cannot be a category path
    back = read_opml(data, "out.opml")
    assert [(f.url, f.name) for f in back.feeds] == [
        ("https://a.example/f?x=1&y=2", '<b>"Tom" & Jerry</b>'),
        ("https://b.example/f", None),
        ("https://c.example/f", None),
    ]


# --- import and export commands --------------------------------------------------------------------


def test_import_export_round_trip(tmp_path: Path) -> None:
    config = _config(tmp_path)
    original = load_opml(DATA / "subscriptions.opml")
    out = cli(config, "feeds", "import", str(DATA / "subscriptions.opml")).stdout
    assert f"6 feeds added to {config}, 0 skipped" in out
    cfg = load_config(config)
    assert [(f.url, f.name, f.tags) for f in cfg.feeds] == [(f.url, f.name, f.tags) for f in original.feeds]

    exported = tmp_path / "export.opml"
    cli(config, "feeds", "export", "--format", "opml", "-o", str(exported))
    back = load_opml(exported)
    assert [(f.url, f.name, f.tags) for f in back.feeds] == [(f.url, f.name, f.tags) for f in original.feeds]

    # and to stdout, the same document
    stdout = cli(config, "feeds", "export").stdout_bytes
    assert read_opml(stdout, "stdout").feeds == back.feeds


def test_import_keeps_the_file_and_skips_configured_feeds(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        '\n[[feeds]]\nurl = "http://lemonde.fr/international/rss_full.xml"  # by hand\nname = "LM"\n'
        '\n[[topics]]\nname = "t"\nquery = "x"\n',
    )
    before = config.read_text(encoding="utf-8")
    out = cli(config, "feeds", "import", str(DATA / "odd.opml"), "--tag", "imported").stdout
    assert "skip  https://www.lemonde.fr/international/rss_full.xml  (already configured as 'LM'" in out
    assert "skip  javascript:alert(1)  (not an http(s) URL)" in out
    assert "skip  https://friend.example/list.opml  (a link to another subscription list" in out
    assert "4 feeds added" in out and "4 skipped" in out
    after = config.read_text(encoding="utf-8")
    assert after.startswith(before.rstrip("\n"))  # existing text and comments untouched
    assert "# Imported from odd.opml by `watcher feeds import`" in after
    cfg = load_config(config)
    assert [f.name for f in cfg.feeds] == [
        "LM", "Untitled folder's feed", "Old browser link", None, "Tab and newline name",
    ]  # fmt: skip
    assert all("imported" in f.tags for f in cfg.feeds[1:])
    # importing again adds nothing
    again = cli(config, "feeds", "import", str(DATA / "odd.opml")).stdout
    assert "0 feeds added" in again
    assert config.read_text(encoding="utf-8") == after


def test_import_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    before = config.read_bytes()
    out = cli(config, "feeds", "import", str(DATA / "subscriptions.opml"), "--dry-run").stdout
    assert "would add  https://n1info.rs/feed/  'N1 Srbija'  [Balkans, Serbia]" in out
    assert "6 feeds would be added" in out
    assert config.read_bytes() == before


def test_import_of_a_non_opml_file_fails_naming_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = cli(config, "feeds", "import", str(DATA / "feeds" / "rss2.xml"), code=1)
    assert "rss2.xml: not OPML" in result.output
    missing = cli(config, "feeds", "import", str(tmp_path / "missing.opml"), code=1)
    assert "missing.opml: cannot read" in missing.output


def test_import_refuses_to_break_a_config_with_inline_feeds(tmp_path: Path) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'feeds = [{{url = "https://x.example/f"}}]\n[watcher]\ndatabase = "{tmp_path.as_posix()}/w.db"\n'
    )
    before = config.read_bytes()
    result = cli(config, "feeds", "import", str(DATA / "subscriptions.opml"), code=2)
    assert "not changed" in result.output
    assert config.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- the appender ----------------------------------------------------------------------------------


@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_toml_string_round_trips(value: str) -> None:
    assert tomllib.loads(f"x = {toml_string(value)}")["x"] == value


def test_append_feeds_adds_tables_after_other_tables(tmp_path: Path) -> None:
    config = _config(tmp_path, '\n[channels.desk]\ntype = "console"')  # no final newline
    append_feeds(config, [FeedEntry(url="https://a.example/f", name='Q "uoted"\\', tags=("x", "ä"))])
    feeds = load_config(config).feeds
    assert [(f.url, f.name, f.tags) for f in feeds] == [("https://a.example/f", 'Q "uoted"\\', ("x", "ä"))]


# --- OPML files named by the configuration ---------------------------------------------------------


def test_config_opml_source_feeds_are_merged(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "subs.opml").write_bytes((DATA / "subscriptions.opml").read_bytes())
    config = _config(
        tmp_path,
        '\n[[opml]]\npath = "lists/subs.opml"\ntags = ["desk"]\n'
        '\n[[feeds]]\nurl = "https://n1info.rs/feed"\nname = "N1 (tuned)"\ninterval = "5m"\n'
        '\n[[topics]]\nname = "serbia"\nquery = "Srbija"\nfeeds = ["tag:Serbia"]\n',
    )
    cfg = load_config(config)
    names = [f.name for f in cfg.feeds]
    assert names[0] == "N1 (tuned)"  # [[feeds]] wins over the same feed in the list
    assert names.count("N1 Srbija") == 0 and len(names) == 6
    danas = next(f for f in cfg.feeds if f.name == "Danas")
    assert danas.tags == ("sr", "Balkans", "Serbia", "desk")
    topic = cfg.topic("serbia")
    assert topic is not None
    assert {f.name for f in cfg.feeds if topic.wants_feed(f)} == {"Вести РТС", "Danas"}
    # exported, every configured feed appears once
    exported = load_opml(_export(config, tmp_path))
    assert len(exported.feeds) == 6


def _export(config: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out.opml"
    cli(config, "feeds", "export", "-o", str(out))
    return out


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "missing.opml: cannot read"),
        (b"<rss/>", "missing.opml: not OPML"),
        (
            _outline_doc('<outline text="bad" xmlUrl="gopher://x.example/"/>'),
            "outline 'bad': not an http(s) URL",
        ),
    ],
)
def test_a_bad_opml_source_is_a_config_error_naming_it(
    tmp_path: Path, content: bytes | None, words: str
) -> None:
    if content is not None:
        (tmp_path / "missing.opml").write_bytes(content)
    config = _config(tmp_path, '\n[[opml]]\npath = "missing.opml"\n')
    with pytest.raises(ConfigError) as e:
        load_config(config)
    assert e.value.path == str(config)
    assert e.value.key_path.startswith("opml[0]")
    assert words in str(e.value)
    assert str(tmp_path / "missing.opml") in str(e.value)  # the whole path, so the file is found
    check = cli(config, "check", code=2)
    assert "missing.opml" in check.output
