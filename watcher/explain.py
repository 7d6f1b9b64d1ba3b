"""Why a query matches a text, or not: every occurrence of every term, for `watcher match`.

Kept apart from the matcher because it walks every term's positions, which the hot path never does.
"""

from __future__ import annotations

from dataclasses import dataclass

from watcher.match import (
    Compiled,
    Document,
    Field,
    Span,
    build_match,
    compile_query,
    query_leaves,
    term_spans,
)
from watcher.models import MARK_CLOSE, MARK_OPEN, Match
from watcher.query import Query, Term


@dataclass(frozen=True, slots=True)
class TermHit:
    """One occurrence of a query term in the item."""

    term: str  # as written in the query
    field: str  # title | text
    first_token: int  # token indices in the field, inclusive
    last_token: int
    start: int  # character offsets in the original field text
    end: int
    text: str  # the original words, e.g. "Вучић" for the term Vucic
    negated: bool = False  # found under NOT: it counts against the match


@dataclass(frozen=True, slots=True)
class Explanation:
    query: Query
    matched: bool
    hits: tuple[TermHit, ...]
    missing: tuple[str, ...]  # positive terms that did not occur at all
    match: Match | None

    def format(self) -> str:
        """Lines for a person: the verdict, then each occurrence and what was not found."""
        lines = [("MATCH" if self.matched else "NO MATCH") + f": {self.query.source}"]
        for h in self.hits:
            why = "  (under NOT)" if h.negated else ""
            lines.append(f"  {h.term}: {h.field} token {h.first_token}: {h.text!r}{why}")
        lines.extend(f"  {t}: not found" for t in self.missing)
        if self.match is not None:
            shown = self.match.snippet.replace(MARK_OPEN, "[").replace(MARK_CLOSE, "]")
            lines.append(f"  snippet ({self.match.field}): {shown}")
        return "\n".join(lines)


Occurrence = tuple[Term, bool, Field, list[Span]]  # term, under NOT?, field, where


def _occurrences(compiled: Compiled, doc: Document) -> list[Occurrence]:
    found: list[Occurrence] = []
    for term, negated, gate in compiled.leaves:
        if not gate(doc):
            continue
        for field in doc.fields(term.scope):
            spans = term_spans(term, field)
            if spans:
                found.append((term, negated, field, spans))
    return found


def explain(query: Query, doc: Document) -> Explanation:
    compiled = compile_query(query)
    matched = compiled.pred(doc)
    found = _occurrences(compiled, doc)
    hits: list[TermHit] = []
    for term, negated, field, spans in found:
        for first, last in spans:
            start, end = field.span(first)[0], field.span(last)[1]
            text = field.source[start:end]
            hits.append(TermHit(term.source, field.name, first, last, start, end, text, negated))
    seen = {h.term for h in hits}
    missing = tuple(
        dict.fromkeys(t.source for t, neg in query_leaves(query.root) if not neg and t.source not in seen)
    )
    result = build_match(compiled, doc) if matched else None
    return Explanation(query, matched, tuple(hits), missing, result)
