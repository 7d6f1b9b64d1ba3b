"""`watcher search` against `watcher backtest` on a store filled by real polls of a local feed server.

Search narrows with the FTS index and then decides with the topic matcher, so for every query its results
must be exactly backtest's (which reads every stored item); filters and output are checked on the same store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clihelp import cli, json_lines
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer
from watcher import archive
from watcher.config import load_config
from watcher.query import parse_query
from watcher.store import Store

NOW = datetime.now(UTC)

# (feed path, language, [(title, summary)]): English, Serbian Latin and Serbian Cyrillic, with codes written
# every way (FK-3, FK 3, FK3, and "FK. 3" which is not the code), phrases across punctuation, title-only words.
CORPUS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("/en", "en", [
        ("Serbia takes delivery of Chinese FK-3 air defence", "The FK-3 system arrived in Belgrade; China confirmed the shipment of missiles."),
        ("Drones over Belgrade", "The Serbian army showed CH-92A drones made in China."),
        ("Sports roundup", "Serbia beat China at volleyball; no drones were involved."),
        ("Air defence upgrade", "Officials said the HQ-22 (Hong Qi 22) batteries will be deployed near Niš."),
        ("Market news", "FK. 3 people were hurt at the market, police said."),
        ("Vučić meets Xi", "President Vučić met Xi Jinping to discuss the air-defence deal with China."),
        ("Weather", "Rain is expected across Serbia on Monday."),
        ("FK3 in focus", "Analysts compare the FK 3 and HQ22 systems, and Serbia's choice."),
        ("Serbia, China sign deal", "Belgrade and Beijing signed a deal on missiles and drones."),
    ]),
    ("/sr", "sr", [
        ("Srbija nabavila kineske dronove", "Vojska Srbije prikazala je dronove CH-92A iz Kine."),
        ("Vučić: nabavka raketa iz Kine", "Predsednik Vučić rekao je da će rakete FK-3 stići uskoro."),
        ("Đilas o izborima", "Dragan Đilas je govorio o izborima u Beogradu."),
        ("Sport", "Srbija je pobedila Kinu u odbojci."),
        ("VUČIĆ U PEKINGU", "Predsednik je razgovarao o protivvazdušnoj odbrani i dronovima."),
    ]),
    ("/cyr", "sr", [
        ("Србија набавила кинеске беспилотне летелице", "Војска Србије приказала је беспилотне летелице ЦХ-92А из Кине."),
        ("Вучић о ракетама", "Председник Вучић рекао је да ће ракете ФК-3 стићи ускоро из Кине."),
        ("Ђилас и Вучић", "Ђилас је критиковао Вучића због набавке дронова."),
        ("Vreme", "Kiša u Srbiji u ponedeljak, javlja RHMZ Srbija."),
    ]),
]  # fmt: skip

ALIASES = """
[aliases]
air_defence = ['FK-3', 'HQ-22', '"Hong Qi 22"']
drones = ['CH-92A', 'drone*', 'dron*', 'беспилот*']
"""
MISSION = (
    "(Serbia OR Srbija OR Србија OR Vučić) AND (China OR Kina OR Кина OR kinesk*) "
    "AND (@air_defence OR @drones OR missile* OR raket*)"
)
QUERIES = [
    "Serbia AND China",
    "Vučić",
    "Вучић",
    "VUCIC",
    "Srbija OR Србија",
    "FK-3",
    '"FK 3"',
    "FK3",
    '"air defence"',
    "drone* OR dron*",
    "беспилот*",
    "Serbia NOT sport*",
    "NOT Serbia",
    "Serbia NEAR/3 China",
    "Vučić NEAR/2 (rekao OR said OR met)",
    "title:Vučić",
    "title:(dron* OR drone*) AND (China OR Kine)",
    "text:Serbia AND NOT title:Serbia",
    "Đilas",
    "Djilas",
    "Ђилас",
    'HQ-22 OR "Hong Qi 22"',
    "CH-92A",
    "@air_defence AND (China OR Kina OR Кина OR kinesk* OR Kine)",
    MISSION,
    '"Serbia China"',
    '"Srbij* Kin*"',
]


def _entries(path: str, items: list[tuple[str, str]]) -> list[Entry]:
    name = path.strip("/")
    return [
        Entry(f"{name}-{i}", title, f"https://{name}.example/{i}", summary, NOW - timedelta(days=2 * i + 1))
        for i, (title, summary) in enumerate(items)
    ]


def populate(srv: FeedServer, tmp_path: Path, extra: str = "") -> Path:
    """Serve the corpus, write a configuration, poll it through the CLI; returns the configuration file."""
    feeds = ""
    for path, lang, items in CORPUS:
        srv.serve(path, rss(_entries(path, items), title=f"{path} feed", language=lang))
        tags = '["en"]' if lang == "en" else '["sr"]'
        feeds += f'[[feeds]]\nurl = "{srv.url(path)}"\nname = "{path.strip("/")}"\ntags = {tags}\n'
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "watcher.db"}"\n{ALIASES}{feeds}'
        f"[[topics]]\nname = \"mission\"\nquery = '{MISSION}'\n"
        '[[topics]]\nname = "sr-only"\nquery = \'Vučić OR Srbija\'\nlanguages = ["sr"]\n'
        '[[topics]]\nname = "en-feeds"\nquery = \'Serbia OR Vučić\'\nfeeds = ["tag:en"]\n' + extra,
        encoding="utf-8",
    )
    cli(cfg, "poll")
    return cfg


@pytest.fixture
def polled(feed_server: FeedServer, tmp_path: Path) -> Path:
    return populate(feed_server, tmp_path)


def _keys(rows: list[dict[str, object]]) -> set[tuple[object, object]]:
    return {(r["feed"], r["guid"]) for r in rows}


def test_search_equals_backtest_for_every_query(polled: Path) -> None:
    total = sum(len(items) for _, _, items in CORPUS)
    narrowed = 0
    for q in QUERIES:
        expected = _keys(json_lines(polled, "backtest", "--query", q))
        got = json_lines(polled, "search", q)
        assert _keys(got) == expected, q
        assert len(got) == len(expected), q  # no item twice
        cfg = load_config(polled, environ={})
        stats = archive.SearchStats()
        with Store(cfg.database_path) as store:
            list(archive.search(store, parse_query(q, cfg.file.aliases), stats=stats))
        assert stats.matched == len(expected)
        narrowed += stats.candidates < total
        if q == "NOT Serbia":
            assert stats.expression is None and stats.candidates == total
    assert narrowed >= len(QUERIES) - 3  # the index did the narrowing, not a scan of everything
    # the corpus exercises the hard cases: each of these finds something
    for q in ["Вучић", "FK-3", "беспилот*", "Djilas", "title:Vučić", MISSION]:
        assert json_lines(polled, "search", q), q


@pytest.mark.parametrize("topic", ["mission", "sr-only", "en-feeds"])
def test_search_by_topic_equals_backtest_by_topic(polled: Path, topic: str) -> None:
    expected = _keys(json_lines(polled, "backtest", "--topic", topic))
    assert expected
    assert _keys(json_lines(polled, "search", "--topic", topic)) == expected


def test_topic_scope_applies_languages_and_feeds(polled: Path) -> None:
    assert {r["feed"] for r in json_lines(polled, "search", "--topic", "sr-only")} == {"sr", "cyr"}
    assert {r["feed"] for r in json_lines(polled, "search", "--topic", "en-feeds")} == {"en"}
    assert {r["feed"] for r in json_lines(polled, "search", "Vučić OR Serbia")} == {"en", "sr", "cyr"}


def test_codes_match_only_glued_spellings(polled: Path) -> None:
    titles = {r["title"] for r in json_lines(polled, "search", "FK-3")}
    assert "FK3 in focus" in titles  # "FK 3" in the text
    assert "Вучић о ракетама" in titles  # ФК-3
    assert "Market news" not in titles  # "FK. 3 people": FTS proposes it, the matcher refuses it


def test_filters_since_feed_and_limit(polled: Path) -> None:
    everything = json_lines(polled, "search", "Serbia OR Srbija OR Србија OR Srbije OR Србије")
    dates = [r["published"] for r in everything]
    assert dates == sorted(dates, reverse=True)  # newest first
    recent = json_lines(polled, "search", "Serbia OR Srbija OR Србија OR Srbije OR Србије", "--since", "4d")
    assert recent and len(recent) < len(everything)
    cutoff = (NOW - timedelta(days=4)).isoformat()
    assert all(str(r["published"]) >= cutoff for r in recent)
    day = (NOW - timedelta(days=4)).date().isoformat()
    by_date = json_lines(polled, "search", "Serbia OR Srbija", "--since", day)
    assert all(str(r["published"]) >= day for r in by_date)
    only_sr = json_lines(polled, "search", "Vučić", "--feed", "sr")
    assert only_sr and {r["feed"] for r in only_sr} == {"sr"}
    two = json_lines(polled, "search", "Vučić", "--feed", "sr", "--feed", "/cyr feed")
    assert {r["feed"] for r in two} == {"sr", "cyr"}  # a feed's name or its own title
    limited = json_lines(polled, "search", "Vučić", "--limit", "2")
    assert limited == json_lines(polled, "search", "Vučić")[:2]


def test_json_and_table_output(polled: Path) -> None:
    (row,) = json_lines(polled, "search", '"Hong Qi 22"')
    assert row["title"] == "Air defence upgrade"
    assert row["url"] == "https://en.example/3" and row["feed"] == "en" and row["language"] == "en"
    assert row["terms"] == ['"Hong Qi 22"'] and "**Hong Qi 22**" in row["snippet"]
    assert str(row["story"]).startswith("s-")
    out = cli(polled, "search", "Вучић").stdout
    assert "Вучић о ракетама" in out and "Vučić meets Xi" in out
    assert "matches;" in out and "from the full-text index" in out


def test_usage_errors(polled: Path) -> None:
    assert "QUERY or --topic" in cli(polled, "search", code=2).output
    assert "QUERY or --topic" in cli(polled, "search", "a", "--topic", "mission", code=2).output
    assert "no topic named" in cli(polled, "search", "--topic", "nope", code=2).output
    assert "unbalanced parenthesis" in cli(polled, "search", "(Serbia", code=2).output
    assert "no stored feed named 'nope'" in cli(polled, "search", "a", "--feed", "nope", code=2).output
    assert "not an age or a date" in cli(polled, "search", "a", "--since", "yesterday", code=2).output


def test_parse_since() -> None:
    now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    assert archive.parse_since("7d", now) == datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    assert archive.parse_since("2025-03-01", now) == datetime(2025, 3, 1, tzinfo=UTC)
    assert archive.parse_since("2025-03-01T08:30", now) == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    assert archive.parse_since("2025-03-01T08:30+01:00", now) == datetime(2025, 3, 1, 7, 30, tzinfo=UTC)
    for bad in ("soon", "2025-13-01", "7x"):
        with pytest.raises(ValueError, match="not a"):
            archive.parse_since(bad, now)
