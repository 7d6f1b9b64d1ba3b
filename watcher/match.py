"""Evaluating parsed topic queries against items.

Cost model: an item is folded and tokenized once (``prepare``) into a token list per field and one set
of all its tokens. Most of a query is then set membership (an OR of plain words is one ``isdisjoint``, a
prefix one substring search in the folded text); token positions (per word, on demand), the sorted
vocabulary for prefixes and original character offsets are computed lazily, only when a phrase, code, NEAR,
wildcard or snippet needs them. ``TopicIndex`` (watcher/topicindex.py) adds an inverted index over the words
each query cannot match without, so a document meets only the topics that could possibly match it; it
returns ``LazyMatch``es, so terms and snippets are built only for the hits a caller keeps.

Semantics not spelled out by the query grammar (watcher/query.py):

* a phrase, code or NEAR is evaluated inside one field, never across the title/text boundary;
* NEAR needs two different, non-overlapping occurrences: ``a NEAR/5 a`` wants "a" twice;
* a query that matches through NOT alone (``NOT sport``) reports no terms and snippets the text's start.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from watcher.models import Match
from watcher.query import Near, Node, Not, Or, Query, Scope, Term, Word
from watcher.text import SNIPPET_CHARS, TokenLocator, is_glue, snippet, token_text

Span = tuple[int, int]  # first and last token index, inclusive
Pred = Callable[["Document"], bool]


class Field:
    """One field of a prepared item. Past its tokens, everything is computed on first use: most
    documents are rejected by the document-wide vocabulary alone."""

    __slots__ = ("_locator", "_positions", "folded", "name", "source", "tokens")

    def __init__(
        self, name: str, source: str, folded: str | None = None, tokens: list[str] | None = None
    ) -> None:
        """``folded`` and ``tokens``, if given, must be ``_folded(source)`` and its split."""
        self.name = name
        self.source = source
        self.folded = _folded(source) if folded is None else folded
        self.tokens = self.folded.split() if tokens is None else tokens
        self._positions: dict[str, list[int]] | None = None
        self._locator: TokenLocator | None = None

    def positions(self, word: Word) -> list[int]:
        """Ascending token indices where ``word`` occurs.

        Found per word with C-level list scans and cached: a query asks about a few words of a field, so
        indexing every token of it would cost more.
        """
        if word.prefix:
            found = [self.exact(t) for t in self.with_prefix(word.text)]
            return found[0] if len(found) == 1 else sorted(i for ps in found for i in ps)
        return self.exact(word.text)

    def with_prefix(self, prefix: str) -> set[str]:
        """The distinct tokens starting with ``prefix``, found by substring search in ``folded``."""
        folded, head = self.folded, " " + prefix
        found: set[str] = set()
        i = folded.find(head)
        while i >= 0:
            end = folded.find(" ", i + 1)
            found.add(folded[i + 1 : end] if end >= 0 else folded[i + 1 :])
            i = folded.find(head, end) if end >= 0 else -1
        return found

    def exact(self, text: str) -> list[int]:
        """Ascending token indices of the token ``text``."""
        if self._positions is None:
            self._positions = {}
        cached = self._positions.get(text)
        if cached is None:
            toks = self.tokens
            cached = []
            i = -1
            for _ in range(toks.count(text)):
                i = toks.index(text, i + 1)
                cached.append(i)
            self._positions[text] = cached
        return cached

    def span(self, i: int) -> tuple[int, int]:
        """Where token ``i`` is in ``source``: start and end offsets."""
        if self._locator is None:
            self._locator = TokenLocator(self.source)
        return self._locator.span(i)

    def glued(self, i: int) -> bool:
        """Whether tokens i and i+1 are written as one code (nothing or one hyphen/space between)."""
        return is_glue(self.source[self.span(i)[1] : self.span(i + 1)[0]])


def _folded(source: str) -> str:
    # Tokens separated by whitespace, with a leading space: " " + prefix occurs in it exactly where a
    # token starts with that prefix, so prefix checks are one C-level substring search.
    return " " + token_text(source)


class Document:
    """An item prepared once for matching against any number of queries.

    Holds each field's folded text and tokens, which set checks and scoped words need; the ``Field`` objects
    (positions, offsets) are made on first use, since most documents are decided without them.
    """

    __slots__ = (
        "_text",
        "_title",
        "text_folded",
        "text_source",
        "text_tokens",
        "title_folded",
        "title_source",
        "title_tokens",
        "vocab",
    )

    def __init__(self, title: str, text: str) -> None:
        self.title_source = title
        self.text_source = text
        self.title_folded = folded = _folded(title)
        self.title_tokens = tokens = folded.split()
        self.vocab = vocab = set(tokens)
        self.text_folded = folded = _folded(text)
        self.text_tokens = tokens = folded.split()
        vocab.update(tokens)
        self._title: Field | None = None
        self._text: Field | None = None

    @property
    def title(self) -> Field:
        field = self._title
        if field is None:
            field = self._title = Field("title", self.title_source, self.title_folded, self.title_tokens)
        return field

    @property
    def text(self) -> Field:
        field = self._text
        if field is None:
            field = self._text = Field("text", self.text_source, self.text_folded, self.text_tokens)
        return field

    def has_prefix(self, prefix: str) -> bool:
        """Some token of either field starts with ``prefix``."""
        head = " " + prefix
        return head in self.text_folded or head in self.title_folded

    def fields(self, scope: Scope) -> tuple[Field, ...]:
        if scope is Scope.TITLE:
            return (self.title,)
        if scope is Scope.TEXT:
            return (self.text,)
        return (self.title, self.text)


def prepare(title: str, text: str) -> Document:
    return Document(title, text)


# --- leaves --------------------------------------------------------------------------------------------


def _variant_spans(field: Field, variant: tuple[Word, ...], first_only: bool = False) -> list[Span]:
    heads = field.positions(variant[0])
    if len(variant) == 1 or not heads:
        return [(p, p) for p in heads]
    later: list[set[int]] = []
    for w in variant[1:]:
        ps = field.positions(w)
        if not ps:
            return []
        later.append(set(ps))
    glued = [k for k in range(1, len(variant)) if variant[k].glued]
    last = len(variant) - 1
    out: list[Span] = []
    for p in heads:
        if all(p + k + 1 in s for k, s in enumerate(later)) and all(field.glued(p + k - 1) for k in glued):
            out.append((p, p + last))
            if first_only:
                break
    return out


def term_spans(term: Term, field: Field) -> list[Span]:
    """Every occurrence of ``term`` in ``field`` (which the caller has checked ``term.scope`` allows)."""
    if len(term.variants) == 1:
        return _variant_spans(field, term.variants[0])
    return sorted({s for v in term.variants for s in _variant_spans(field, v)})


def _term_pred(term: Term) -> Pred:
    only = term.variants[0][0] if len(term.variants) == 1 and len(term.variants[0]) == 1 else None
    scope = term.scope
    if only is not None and not only.prefix:
        word = only.text
        if scope is Scope.ANY:
            return lambda d: word in d.vocab
        if scope is Scope.TITLE:
            return lambda d: word in d.vocab and word in d.title_tokens  # list scans run in C
        return lambda d: word in d.vocab and word in d.text_tokens
    if only is not None and scope is Scope.ANY:
        return lambda d: d.has_prefix(only.text)
    # Phrases, codes and scoped prefixes: a document-wide vocabulary check first, positions only if it passes.
    checks = _vocab_checks(term)

    def pred(d: Document) -> bool:
        for exact, prefixes, variant in checks:
            if exact <= d.vocab and all(map(d.has_prefix, prefixes)):
                for f in d.fields(scope):
                    if _variant_spans(f, variant, first_only=True):
                        return True
        return False

    return pred


def _is_plain_word(node: Node) -> str | None:
    """The folded word of a single-word, exact, unscoped term: those reduce to set operations."""
    if isinstance(node, Term) and node.scope is Scope.ANY and len(node.variants) == 1:
        (variant,) = node.variants
        if len(variant) == 1 and not variant[0].prefix:
            return variant[0].text
    return None


# --- compiling the boolean structure -------------------------------------------------------------------


def _compile(node: Node) -> Pred:
    if isinstance(node, Term):
        return _term_pred(node)
    if isinstance(node, Not):
        inner = _compile(node.child)
        return lambda d: not inner(d)
    if isinstance(node, Near):
        return _near_pred(node)
    plain = frozenset(w for c in node.children if (w := _is_plain_word(c)) is not None)
    rest = [c for c in node.children if _is_plain_word(c) is None]
    # Cheap checks first: set operations, then leaves, then NOT and NEAR.
    rest.sort(key=lambda c: 2 if isinstance(c, Not | Near) else 1 if isinstance(c, Term) else 1.5)
    preds = [_compile(c) for c in rest]
    if isinstance(node, Or):
        if plain:
            preds.insert(0, lambda d: not plain.isdisjoint(d.vocab))
        return preds[0] if len(preds) == 1 else _any_of(tuple(preds))
    if plain:
        preds.insert(0, lambda d: plain <= d.vocab)
    return preds[0] if len(preds) == 1 else _all_of(tuple(preds))


def _generate(root: Node) -> Pred:
    """``_compile(root)`` as one generated function: the boolean structure and the cheap leaves become one
    Python expression over the document's vocabulary, so a candidate topic costs one call instead of a call
    per node. The query's words reach the code only as named constants, never as source text. A tree the
    compiler cannot take keeps the closures, which compute the same answer."""
    consts: dict[str, object] = {}

    def const(value: object) -> str:
        name = f"_c{len(consts)}"
        consts[name] = value
        return name

    def expr(node: Node) -> str:
        if isinstance(node, Term):
            only = node.variants[0][0] if len(node.variants) == 1 and len(node.variants[0]) == 1 else None
            if only is not None and not only.prefix:
                w = const(only.text)
                if node.scope is Scope.ANY:
                    return f"{w} in V"
                return f"({w} in V and {w} in d.{node.scope.value}_tokens)"
            if only is not None and node.scope is Scope.ANY:
                h = const(" " + only.text)
                return f"({h} in d.text_folded or {h} in d.title_folded)"
            # Some variant's exact words must all be in the vocabulary: checked here, before the call.
            exact = [frozenset(w.text for w in v if not w.prefix) for v in node.variants]
            call = f"{const(_term_pred(node))}(d)"
            if not all(exact):
                return call
            return "((" + " or ".join(f"{const(e)} <= V" for e in exact) + f") and {call})"
        if isinstance(node, Not):
            return f"(not {expr(node.child)})"
        if isinstance(node, Near):  # both sides must occur: cheap checks first, positions last
            return f"({expr(node.left)} and {expr(node.right)} and {const(_near_pred(node, False))}(d))"
        plain = frozenset(pw for c in node.children if (pw := _is_plain_word(c)) is not None)
        rest = [c for c in node.children if _is_plain_word(c) is None]
        rest.sort(key=lambda c: 2 if isinstance(c, Not | Near) else 1 if isinstance(c, Term) else 1.5)
        parts = [expr(c) for c in rest]
        if isinstance(node, Or):
            if plain:
                parts.insert(0, f"not {const(plain)}.isdisjoint(V)")
            return "(" + " or ".join(parts) + ")"
        if plain:
            parts.insert(0, f"{const(plain)} <= V")
        return "(" + " and ".join(parts) + ")"

    try:
        code = compile(f"def pred(d):\n    V = d.vocab\n    return {expr(root)}\n", "<query>", "exec")
    except (SyntaxError, RecursionError, MemoryError):
        return _compile(root)
    exec(code, consts)  # the source holds only operators and constant names, built above
    pred: Pred = consts["pred"]  # type: ignore[assignment]
    return pred


def _true(d: Document) -> bool:
    return True


def _any_of(preds: tuple[Pred, ...]) -> Pred:
    def pred(d: Document) -> bool:
        for p in preds:
            if p(d):
                return True
        return False

    return pred


def _all_of(preds: tuple[Pred, ...]) -> Pred:
    if len(preds) == 2:
        a, b = preds
        return lambda d: a(d) and b(d)

    def pred(d: Document) -> bool:
        for p in preds:
            if not p(d):
                return False
        return True

    return pred


def _operand_terms(node: Node) -> tuple[Term, ...]:
    if isinstance(node, Term):
        return (node,)
    assert isinstance(node, Or)  # guaranteed by the parser
    return tuple(t for c in node.children for t in _operand_terms(c))


def operand_spans(terms: Sequence[Term], field: Field) -> list[Span]:
    spans: set[Span] = set()
    for t in terms:
        if t.scope is Scope.ANY or t.scope.value == field.name:
            spans.update(term_spans(t, field))
    return sorted(spans)


def _near(a: list[Span], b: list[Span], distance: int) -> bool:
    """Some span of ``a`` and some span of ``b`` are disjoint and at most ``distance`` tokens apart."""
    if not a or not b:
        return False
    longest = max(e - s for s, e in b)
    for s, e in a:
        lo = bisect.bisect_left(b, (s - distance - longest, -1))
        hi = bisect.bisect_right(b, (e + distance, 1 << 62))
        for s2, e2 in b[lo:hi]:
            if (e < s2 <= e + distance) or (e2 < s <= e2 + distance):
                return True
    return False


def _near_pred(node: Near, gated: bool = True) -> Pred:
    """``gated=False`` leaves out the check that both sides occur at all, for callers that made it."""
    left, right = _operand_terms(node.left), _operand_terms(node.right)
    gate_left, gate_right = (_compile(node.left), _compile(node.right)) if gated else (_true, _true)
    distance = node.distance

    def pred(d: Document) -> bool:
        if not (gate_left(d) and gate_right(d)):
            return False
        return any(
            _near(operand_spans(left, f), operand_spans(right, f), distance) for f in (d.title, d.text)
        )

    return pred


@dataclass(frozen=True, slots=True)
class Compiled:
    """A query ready to run: its predicate and its distinct leaves (with "under NOT") for reporting."""

    query: Query
    pred: Pred
    leaves: tuple[tuple[Term, bool, Pred], ...]  # term, under NOT?, cheap "may occur" gate
    # The leaves a Match reports, in order, with the folded word of single-word exact terms (None for the
    # rest): those, the usual case, skip the general span machinery.
    positive: tuple[tuple[Term, str | None, Pred], ...]


@lru_cache(maxsize=4096)
def compile_query(query: Query) -> Compiled:
    """Compile once per query; cached, since queries are immutable and hashable."""
    leaves = tuple((t, neg, _gate(t)) for t, neg in dict.fromkeys(query_leaves(query.root)))
    positive = tuple((t, _single_word(t), gate) for t, neg, gate in leaves if not neg)
    return Compiled(query, _generate(query.root), leaves, positive)


def _single_word(term: Term) -> str | None:
    if len(term.variants) == 1 and len(term.variants[0]) == 1 and not term.variants[0][0].prefix:
        return term.variants[0][0].text
    return None


# --- a match's terms and snippet ----------------------------------------------------------------------


def query_leaves(node: Node, negated: bool = False) -> Iterator[tuple[Term, bool]]:
    if isinstance(node, Term):
        yield node, negated
    elif isinstance(node, Not):
        yield from query_leaves(node.child, not negated)
    elif isinstance(node, Near):
        yield from query_leaves(node.left, negated)
        yield from query_leaves(node.right, negated)
    else:
        for c in node.children:
            yield from query_leaves(c, negated)


def _vocab_checks(term: Term) -> list[tuple[frozenset[str], tuple[str, ...], tuple[Word, ...]]]:
    """Per variant: the exact words and prefixes the document's vocabulary must hold."""
    return [
        (frozenset(w.text for w in v if not w.prefix), tuple(w.text for w in v if w.prefix), v)
        for v in term.variants
    ]


def _gate(term: Term) -> Pred:
    """A cheap necessary condition on the document's vocabulary, to skip positions for absent terms."""
    checks = _vocab_checks(term)
    if not any(p for _, p, _ in checks):  # codes and phrases: set checks only, run in C
        exacts = tuple(e for e, _, _ in checks)
        if len(exacts) == 1:
            (exact,) = exacts
            return lambda d: exact <= d.vocab
        return lambda d: any(map(d.vocab.issuperset, exacts))
    return lambda d: any(e <= d.vocab and all(map(d.has_prefix, p)) for e, p, _ in checks)


def build_match(compiled: Compiled, doc: Document) -> Match:
    """Terms and snippet of a document ``compiled`` matches. Terms found only under NOT play no part.

    The snippet comes from the text if any term occurs there, else from the title, so positions are looked
    up in one field only: an unscoped word is reported on the document's vocabulary alone, and a phrase or
    code found in the text is not looked for in the title.
    """
    vocab = doc.vocab
    terms: dict[str, None] = {}
    any_words: list[str] = []  # unscoped single words: in the text, the title or both
    text_words: list[str] = []
    title_words: list[str] = []
    text_spans: list[Span] = []
    title_spans: list[Span] = []  # complete only while text_spans is empty, which is when it is used
    for term, word, gate in compiled.positive:
        scope = term.scope
        if word is not None:
            if word in vocab:
                if scope is Scope.ANY:
                    terms[term.source] = None
                    any_words.append(word)
                elif scope is Scope.TEXT:
                    if word in doc.text_tokens:
                        terms[term.source] = None
                        text_words.append(word)
                elif word in doc.title_tokens:
                    terms[term.source] = None
                    title_words.append(word)
            continue
        if not gate(doc):
            continue
        if scope is not Scope.TITLE:
            spans = term_spans(term, doc.text)
            if spans:
                terms[term.source] = None
                text_spans.extend(spans)
                continue
        if scope is not Scope.TEXT:
            spans = term_spans(term, doc.title)
            if spans:
                terms[term.source] = None
                title_spans.extend(spans)
    if not terms:
        if doc.text_source.strip() or not doc.title_source.strip():
            return Match(terms=(), snippet=snippet(doc.text_source, []), field="text")
        return Match(terms=(), snippet=snippet(doc.title_source, []), field="title")
    field = text = doc.text
    chosen = text_spans
    for w in (*any_words, *text_words) if text_words else any_words:
        found = text.exact(w)
        chosen.extend(zip(found, found, strict=True))
    if not chosen:
        field = title = doc.title
        chosen = title_spans
        for w in (*any_words, *title_words) if title_words else any_words:
            found = title.exact(w)
            chosen.extend(zip(found, found, strict=True))
    # Offsets only for spans that can fall in the window, found in order until one starts past it. Two
    # terms with the same span (Vucic OR Вучић) would only mark it twice, so duplicates go first.
    span = field.span
    limit = -1
    ranges: list[tuple[int, int]] = []
    for a, b in sorted(set(chosen)) if len(chosen) > 1 else chosen:
        start, end = span(a)
        if limit < 0:
            limit = start + SNIPPET_CHARS
        elif start >= limit:
            break
        ranges.append((start, end if a == b else span(b)[1]))
    return Match(terms=tuple(terms), snippet=snippet(field.source, ranges), field=field.name)


class LazyMatch:
    """A topic's match on a document whose terms and snippet are worked out on first use.

    Deciding that a topic matches needs only set checks; the Match (token positions, character offsets, a
    marked snippet) costs several times more and is wanted only for hits that get stored. Holding the
    document keeps it alive as long as this object, which is what laziness costs.
    """

    __slots__ = ("_compiled", "_doc", "_match")

    def __init__(self, compiled: Compiled, doc: Document) -> None:
        self._compiled = compiled
        self._doc = doc
        self._match: Match | None = None

    def build(self) -> Match:
        """The Match, built on first use and kept (two threads racing here build equal Matches)."""
        if self._match is None:
            self._match = build_match(self._compiled, self._doc)
        return self._match

    @property
    def terms(self) -> tuple[str, ...]:
        return self.build().terms

    @property
    def snippet(self) -> str:
        return self.build().snippet

    @property
    def field(self) -> str:
        return self.build().field

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyMatch):
            return self.build() == other.build()
        return self.build() == other if isinstance(other, Match) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equality follows a lazily built value

    def __repr__(self) -> str:
        return f"LazyMatch({self.build()!r})"


def match(query: Query, doc: Document) -> Match | None:
    """The Match for ``doc`` if ``query`` matches it, else None. Never raises for any text."""
    compiled = compile_query(query)
    if not compiled.pred(doc):
        return None
    return build_match(compiled, doc)
