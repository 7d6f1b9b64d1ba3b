"""The full-text index: query translation, the tokens it holds, staying in sync, and never losing a match."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from tests.clihelp import cli, json_lines
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer
from watcher.errors import QuerySyntaxError
from watcher.ftsquery import to_fts
from watcher.match import match, prepare
from watcher.models import Item, body_text
from watcher.query import parse_query
from watcher.store import Store
from watcher.store import fts as store_fts
from watcher.store.db import connect, migrate
from watcher.store.schema import MIGRATIONS
from watcher.text import fold, tokens

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ALIASES = {"ad": ["FK-3", "HQ-22", '"Hong Qi 22"'], "srb": ["Serbia", "Srbija", "Србија"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Serbia", '"serbia"'),
        ("Вучић", '"vucic"'),
        ("Đilas", '"djilas"'),
        ("drone*", '"drone" *'),
        ('"air defence"', '"air defence"'),
        ('"drone* attack"', '"drone" * + "attack"'),
        ("FK-3", '("fk3" OR "fk 3")'),
        ('"FK 3"', '("fk3" OR "fk 3")'),
        ("a b", '("a" AND "b")'),
        ("a OR b", '("a" OR "b")'),
        ("a AND NOT b", '"a"'),
        ("NOT a", None),
        ("a OR NOT b", None),
        ("(a OR NOT b) c", '"c"'),
        ("a NEAR/3 (b OR c*)", '("a" AND ("b" OR "c" *))'),
        ("title:Serbia", 'title : "serbia"'),
        ("text:(a OR b)", '(text : "a" OR text : "b")'),
        ("Vučić OR Vucic OR Вучић", '"vucic"'),
        ("@ad", '(("fk3" OR "fk 3") OR ("hq22" OR "hq 22") OR ("hong qi22" OR "hong qi 22"))'),
    ],
)
def test_translation(query: str, expected: str | None) -> None:
    assert to_fts(parse_query(query, ALIASES)) == expected


# --- the index against the matcher -----------------------------------------------------------------------

TEXTS = [
    ("Serbia takes delivery of Chinese FK-3 air defence", "The FK-3 system arrived; China confirmed it."),
    ("Drones over Belgrade", "The Serbian army showed CH-92A drones made in China."),
    ("Market news", "FK. 3 people were hurt at the market, police said."),
    ("FK3 in focus", "Analysts compare the FK 3, HQ22 and Hong Qi 22, and Serbia's choice."),
    ("Vučić: nabavka raketa iz Kine", "Predsednik Vučić rekao je da će rakete FK–3 stići uskoro."),
    ("Ђилас и Вучић", "Ђилас је критиковао Вучића због набавке дронова и беспилотних летелица."),
    ("Србија и Кина", "Војска Србије приказала је летелице ЦХ-92А из Кине."),
    ("Straße ½ ﬁnal", "Ǆ ﬂ Ⅻ ① ＦＫ－３ ẞ Œuvre naïve café Ærø Ñandú"),
    ("北京 talks", "Ελλάδα και Κίνα; 中国 drones; Serbia–China ties ✈ 🚀 a-b-c"),
    ("", "Serbia China a b c d e f g h i j"),
    ("a b", ""),
    ("sport: Serbia beat China", "No drones, no missiles, no Hong-Qi."),
]


def _item(n: int, title: str, text: str) -> Item:
    return Item(guid=f"g{n}", title=title, summary=text, link=f"https://x.example/{n}", published=T0)


def _fill(store: Store, texts: list[tuple[str, str]], first: int = 0) -> dict[int, tuple[str, str]]:
    """Store items directly (no feed server needed for a fixed set); returns id -> (title, matched text)."""
    out: dict[int, tuple[str, str]] = {}
    with store.transaction():
        store.sync_feeds([("https://feed.example/", "F")], T0)
        for n, (title, text) in enumerate(texts, start=first):
            item = _item(n, title, text)
            story = store.insert_story(feed_url="https://feed.example/", guid=item.guid, title=title, now=T0)
            item_id = store.insert_item(
                feed_url="https://feed.example/", item=item, canonical_url=None, content_hash=str(n),
                story_id=story, story_reason="first", story_score=None, now=T0,
            )  # fmt: skip
            out[item_id] = (title, item.text)
    return out


@pytest.fixture(scope="module")
def fixed_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Store, dict[int, tuple[str, str]]]]:
    store = Store(tmp_path_factory.mktemp("fts") / "w.db")
    items = _fill(store, TEXTS)
    yield store, items
    store.close()


def _candidates(store: Store, expression: str | None) -> set[int]:
    return {int(r["id"]) for r in store_fts.search_rows(store, expression)}


def _leaves() -> st.SearchStrategy[str]:
    words = sorted({t for title, text in TEXTS for t in tokens(f"{title} {text}")})
    originals = [w for title, text in TEXTS for w in f"{title} {text}".split() if tokens(w)]
    return st.one_of(
        st.sampled_from(words),
        st.sampled_from(originals).map(lambda w: '"' + w.replace('"', "") + '"'),
        st.sampled_from([w for w in words if len(w) > 2]).flatmap(
            lambda w: st.integers(1, len(w)).map(lambda k: w[:k] + "*")
        ),
        st.tuples(st.sampled_from(words), st.sampled_from(words)).map(lambda p: f'"{p[0]} {p[1]}"'),
        st.sampled_from(["FK-3", "FK3", '"FK 3"', "HQ-22", "CH-92A", "ЦХ-92А", "Вучић", "Đilas", "Kin*",
                         '"Hong Qi 22"', "@ad", "@srb", "беспилот*", "Serbia's", "a-b", '"Serbia China"']),
    )  # fmt: skip


def _combine(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(parts, parts)
    return st.one_of(
        pair.map(lambda p: f"({p[0]} OR {p[1]})"),
        pair.map(lambda p: f"({p[0]} AND {p[1]})"),
        pair.map(lambda p: f"({p[0]} NOT {p[1]})"),
        parts.map(lambda p: f"title:({p})"),
        parts.map(lambda p: f"text:({p})"),
        parts.map(lambda p: f"NOT ({p})"),
    )


_QUERIES = st.one_of(
    st.recursive(_leaves(), _combine, max_leaves=6),
    st.tuples(_leaves(), _leaves(), st.integers(1, 6)).map(lambda t: f"{t[0]} NEAR/{t[2]} {t[1]}"),
)


@settings(max_examples=400, deadline=None)
@given(source=_QUERIES)
def test_the_index_narrows_to_a_superset_of_the_matches(
    fixed_store: tuple[Store, dict[int, tuple[str, str]]], source: str
) -> None:
    store, items = fixed_store
    try:
        query = parse_query(source, ALIASES)
    except QuerySyntaxError:
        assume(False)  # title:(text:(…)) can never match, and the parser says so
        return
    matched = {i for i, (title, text) in items.items() if match(query, prepare(title, text)) is not None}
    expression = to_fts(query)
    candidates = _candidates(store, expression)
    assert matched <= candidates, (source, expression)
    event("narrowed" if len(candidates) < len(items) else "not narrowed")
    event("matched something" if matched else "matched nothing")


def test_the_index_narrows(fixed_store: tuple[Store, dict[int, tuple[str, str]]]) -> None:
    store, items = fixed_store
    fk3 = _candidates(store, to_fts(parse_query("FK-3")))
    assert len(fk3) == 5  # every spelling of the code, including the unglued "FK. 3" the matcher refuses
    titles = {items[i][0] for i in fk3}
    assert "Market news" in titles and "Straße ½ ﬁnal" in titles  # ＦＫ－３ folds to FK-3
    assert _candidates(store, to_fts(parse_query("title:Serbia"))) == {
        i for i, (title, _) in items.items() if "serbia" in tokens(title)
    }
    assert len(_candidates(store, to_fts(parse_query("Ђилас")))) == 1


def test_fts_refusal_falls_back_to_reading_everything(
    fixed_store: tuple[Store, dict[int, tuple[str, str]]], caplog: pytest.LogCaptureFixture
) -> None:
    store, items = fixed_store
    assert _candidates(store, '"unterminated') == set(items)
    assert "FTS5 refused" in caplog.text


@settings(max_examples=300, deadline=None)
@given(title=st.text(max_size=40), text=st.text(max_size=120))
def test_the_index_holds_exactly_the_matchers_tokens(
    fixed_store: tuple[Store, dict[int, tuple[str, str]]], title: str, text: str
) -> None:
    """The premise of the translation: FTS5's tokens of the folded text are text.tokens(), in order."""
    store, _ = fixed_store
    conn = store.conn
    conn.execute("BEGIN")
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_words USING fts5vocab(main, items_fts, instance)"
        )
        (item_id,) = _fill(store, [(title, text)], first=len(TEXTS))
        rows = conn.execute(
            "SELECT col, term FROM temp.fts_words WHERE doc = ? ORDER BY col, offset", (item_id,)
        ).fetchall()
        assert [t for c, t in rows if c == "title"] == tokens(title)
        assert [t for c, t in rows if c == "text"] == tokens(text)
    finally:
        conn.execute("ROLLBACK")


# --- staying in sync -------------------------------------------------------------------------------------


def _config(tmp_path: Path, srv: FeedServer) -> Path:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n[[feeds]]\nurl = "{srv.url("/f")}"\nname = "F"\n',
        encoding="utf-8",
    )
    return cfg


def _titles(cfg: Path, query: str) -> list[str]:
    return [str(r["title"]) for r in json_lines(cfg, "search", query)]


def test_index_follows_updates_in_place(feed_server: FeedServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    feed_server.serve(
        "/f", rss([Entry("1", "Serbia buys drones", "https://x.example/1", "first version", now)])
    )
    cfg = _config(tmp_path, feed_server)
    cli(cfg, "poll")
    assert _titles(cfg, "drones") == ["Serbia buys drones"]
    feed_server.serve(
        "/f", rss([Entry("1", "Србија купује ракете", "https://x.example/1", "друга верзија", now)])
    )
    assert "1 updated" in cli(cfg, "poll").output
    assert _titles(cfg, "drones") == []
    assert _titles(cfg, "rakete AND druga") == ["Србија купује ракете"]
    with Store(tmp_path / "w.db") as store:
        assert store_fts.check(store) == []
        (item_id,) = [r[0] for r in store.conn.execute("SELECT id FROM items")]
        assert store_fts.indexed_text(store, item_id) == ("srbija kupuje rakete", "druga verzija")


def test_index_follows_full_text_written_later(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/f", rss([Entry("1", "Talks", "https://x.example/1", "short summary", T0)]))
    cfg = _config(tmp_path, feed_server)
    cli(cfg, "poll")
    with Store(tmp_path / "w.db") as store, store.transaction():
        store.conn.execute("UPDATE items SET full_text = 'The article body mentions Вучић and FK-3.'")
    assert _titles(cfg, "Vučić AND FK-3") == ["Talks"]
    with Store(tmp_path / "w.db") as store:
        (row,) = store.conn.execute("SELECT summary, content, full_text FROM items").fetchall()
        (item_id,) = [r[0] for r in store.conn.execute("SELECT id FROM items")]
        assert store_fts.indexed_text(store, item_id) == ("talks", fold(body_text(row[0], row[1], row[2])))


def test_deleting_an_item_by_hand_removes_its_index_row(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve(
        "/f", rss([Entry(str(n), f"Story {n}", f"https://x.example/{n}", "Serbia", T0) for n in range(3)])
    )
    cfg = _config(tmp_path, feed_server)
    cli(cfg, "poll")
    # a plain connection without Watcher's functions (sqlite3, Datasette) may still read and delete
    with sqlite3.connect(tmp_path / "w.db") as db:
        db.execute("PRAGMA foreign_keys = ON")
        first = db.execute("SELECT min(id) FROM items").fetchone()[0]
        db.execute("DELETE FROM neardup_bands WHERE item_id = ?", (first,))
        db.execute("DELETE FROM neardup_items WHERE item_id = ?", (first,))
        db.execute("DELETE FROM items WHERE id = ?", (first,))
        assert db.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'serbia'").fetchone() == (2,)
        with pytest.raises(sqlite3.OperationalError, match="watcher_fold"):
            db.execute("UPDATE items SET title = 'x'")  # but never change text the index could miss
    with Store(tmp_path / "w.db") as store:
        assert store_fts.check(store) == []


def test_migration_from_v3_backfills_the_index(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = connect(path)
    migrate(db, list(MIGRATIONS[:3]))
    db.execute("INSERT INTO feeds (url, name, created_at) VALUES ('https://f.example/', 'F', '2025-01-01')")
    db.execute(
        "INSERT INTO stories (key, title, first_seen, last_seen) VALUES ('s-1', 't', '2025-01-01', '2025-01-01')"
    )
    for n, (title, summary, full) in enumerate([
        ("Вучић у Пекингу", "Разговори о ФК-3", None),
        ("Weather", "Rain", "The full article says Serbia."),
    ]):  # fmt: skip
        db.execute(
            "INSERT INTO items (feed_url, guid, id_source, title, summary, content, first_seen, content_hash, "
            "story_id, story_reason, full_text) VALUES ('https://f.example/', ?, 'guid', ?, ?, '', "
            "'2025-01-01T00:00:00+00:00', 'h', 1, 'first', ?)",
            [f"g{n}", title, summary, full],
        )
    db.conn.close()
    with Store(path) as store:
        assert store.conn.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)
        assert store_fts.check(store) == []
        assert _candidates(store, to_fts(parse_query("Vučić AND FK-3"))) == {1}
        assert _candidates(store, to_fts(parse_query("Serbia"))) == {2}


def test_a_change_of_folding_rebuilds_the_index(
    feed_server: FeedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.serve("/f", rss([Entry("1", "Вучић у Пекингу", "https://x.example/1", "ФК-3", T0)]))
    cfg = _config(tmp_path, feed_server)
    cli(cfg, "poll")
    # as after an upgrade whose folding differs: the stored signature is another, the rows are stale
    with sqlite3.connect(tmp_path / "w.db") as db:
        db.execute("UPDATE daemon_state SET value = 'older' WHERE key = 'fts_fold_signature'")
        db.execute("UPDATE items_fts SET title = 'vuchich', text = 'fk3'")
        assert db.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'vucic'").fetchone() == (0,)
    with Store(tmp_path / "w.db") as store:
        assert store_fts.check(store) == []
        assert store_fts.indexed_text(store, 1) == ("vucic u pekingu", "fk-3")
    assert "search index rebuilt for 1 items" in caplog.text
    assert _titles(cfg, "Vučić AND FK-3") == ["Вучић у Пекингу"]


def test_a_body_folded_by_a_worker_is_indexed_as_given_and_only_for_its_own_text(tmp_path: Path) -> None:
    # The index takes the fold a worker computed for the item inserted with it; a sentinel proves it is used
    # rather than folded again, and the neighbour, inserted without one, is folded by the store.
    with Store(tmp_path / "w.db") as store, store.transaction():
        store.sync_feeds([("https://feed.example/", "F")], T0)
        ids = []
        for n, (text, offer) in enumerate([("Vučić visits Beijing", "sentinel folded"), ("Ђилас", None)]):
            item = _item(n, "t", text)
            story = store.insert_story(feed_url="https://feed.example/", guid=item.guid, title="t", now=T0)
            item_id = store.insert_item(
                feed_url="https://feed.example/", item=item, canonical_url=None, content_hash=str(n),
                story_id=story, story_reason="first", story_score=None, now=T0, folded_body=offer,
            )  # fmt: skip
            ids.append(item_id)
        rows = dict(store.conn.execute(f"SELECT rowid, text FROM {store_fts.FTS_TABLE}").fetchall())
    assert rows == {ids[0]: "sentinel folded", ids[1]: "djilas"}
