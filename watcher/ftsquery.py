"""A topic query (watcher/query.py's AST) as an SQLite FTS5 expression that narrows without losing matches.

The archive's FTS index (watcher/store/fts.py) holds the *folded* title and text of every item, tokenized by
FTS5's unicode61 tokenizer. Folded text is lower-case ASCII, and unicode61 splits ASCII exactly where
watcher/text.py does (a token is a maximal run of ``[a-z0-9]``), so the index holds the very tokens the
matcher sees, in the same order. That is what makes the translation below sound.

Contract: if a query matches an item, the item's FTS row matches ``to_fts(query)``. The FTS answer is a
*superset*; the topic matcher still decides every candidate, so results mean exactly what a topic would match.

* a term becomes an OR of its spellings, each an FTS phrase (``"fk 3"``, ``"fk3"``), a word marked as a
  prefix where the query has ``word*``. A split code must be glued in the text (FK-3, not "FK. 3"); FTS
  cannot see glue, so its phrase is looser, which is allowed;
* ``title:`` and ``text:`` become FTS column filters; unscoped terms search both columns, and a phrase never
  spans two columns in FTS either, just as the matcher never spans fields;
* AND and OR map to themselves;
* NOT narrows nothing (the matcher checks it), so it is dropped: ``a AND NOT b`` narrows by ``a`` alone;
  an OR with a branch that narrows nothing narrows nothing;
* NEAR becomes AND of its operands: proximity is the matcher's job.

``to_fts`` returns None when nothing narrows the search (``NOT sport``): the caller then reads every item.
"""

from __future__ import annotations

from watcher.query import And, Near, Node, Not, Or, Query, Scope, Term, Word

# The FTS5 columns, named like the query language's fields so a scope maps to a column filter directly.
TITLE = Scope.TITLE.value
TEXT = Scope.TEXT.value


def to_fts(query: Query) -> str | None:
    """The FTS5 MATCH expression that every item matching ``query`` satisfies, or None (no narrowing)."""
    return node_to_fts(query.root)


def node_to_fts(node: Node) -> str | None:
    if isinstance(node, Term):
        return _term(node)
    if isinstance(node, Not):
        return None
    if isinstance(node, Near):
        return _join("AND", [node_to_fts(node.left), node_to_fts(node.right)], drop_none=True)
    parts = [node_to_fts(c) for c in node.children]
    if isinstance(node, And):
        return _join("AND", parts, drop_none=True)
    assert isinstance(node, Or)
    return _join("OR", parts, drop_none=False)


def _join(op: str, parts: list[str | None], *, drop_none: bool) -> str | None:
    """Combine children; for AND a child that narrows nothing is left out, for OR it widens to nothing."""
    if not drop_none and any(p is None for p in parts):
        return None
    kept = list(dict.fromkeys(p for p in parts if p is not None))
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    return "(" + f" {op} ".join(kept) + ")"


def _term(term: Term) -> str:
    spellings = list(dict.fromkeys(_phrase(v) for v in term.variants))
    body = spellings[0] if len(spellings) == 1 else "(" + " OR ".join(spellings) + ")"
    if term.scope is Scope.ANY:
        return body
    return f"{term.scope.value} : {body}"


def _phrase(words: tuple[Word, ...]) -> str:
    """Consecutive words as one FTS5 phrase. FTS5 marks only the last token of a quoted string as a prefix,
    so a phrase with a prefix word inside (``"drone* attack"``) is written as strings joined by ``+``.

    Folded words are runs of [a-z0-9] (query.py builds them with text.tokens), so quoting needs no escaping,
    and FTS5 keywords (AND, OR, NOT, NEAR) are upper case, so a quoted lower-case word is never one.
    """
    pieces: list[str] = []
    run: list[str] = []
    for w in words:
        run.append(w.text)
        if w.prefix:
            pieces.append('"' + " ".join(run) + '" *')
            run = []
    if run:
        pieces.append('"' + " ".join(run) + '"')
    return " + ".join(pieces)
