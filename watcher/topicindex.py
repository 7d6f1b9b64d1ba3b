"""Many topics against one document: an inverted index over the words each topic cannot match without.

A document meets only the topics that could possibly match it (and the purely negative ones, which any
document can match); each candidate's compiled predicate (watcher/match.py) then decides. Which words a
topic is indexed by changes what is tried, never what matches: every choice is a set of words of which a
matching document must contain one.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from watcher.match import Document, LazyMatch, compile_query
from watcher.query import Near, Node, Not, Or, Query, Term

_HEAD = 4  # prefixes are indexed, and cheaply ruled out, by their first four characters

Key = tuple[bool, str]  # (is_prefix, folded text): a word or prefix a document must contain


def _key_cost(keys: frozenset[Key]) -> float:
    """A guess at how often a key set lets a document through: short words and prefixes are common."""
    return sum((3.0 if len(t) < 4 else 1.5) if p else (3.0 if len(t) < 3 else 1.0) for p, t in keys)


def required_keys(node: Node) -> frozenset[Key] | None:
    """Keys of which any matching document contains at least one; None when there is no such set
    (the node can match through NOT alone)."""
    if isinstance(node, Term):
        keys: set[Key] = set()
        for variant in node.variants:
            exact = [w.text for w in variant if not w.prefix]
            longest = max(variant, key=lambda w: len(w.text)).text
            keys.add((False, max(exact, key=len)) if exact else (True, longest))
        return frozenset(keys)
    if isinstance(node, Not):
        return None
    if isinstance(node, Or):
        union: set[Key] = set()
        for c in node.children:
            k = required_keys(c)
            if k is None:
                return None
            union |= k
        return frozenset(union)
    children = [node.left, node.right] if isinstance(node, Near) else list(node.children)
    options = [k for c in children if (k := required_keys(c)) is not None]
    return min(options, key=_key_cost) if options else None


def required_clauses(node: Node) -> list[frozenset[Key]]:
    """Key sets of which a matching document contains at least one key each: every word of a phrase, each
    side of an AND or NEAR. Empty when nothing is known (the node can match through NOT alone). Each one is
    as sound a choice of ``required_keys`` as the one the static cost guess makes."""
    if isinstance(node, Term) and len(node.variants) == 1:
        return [frozenset({(w.prefix, w.text)}) for w in node.variants[0]]
    if isinstance(node, Term | Or):
        keys = required_keys(node)
        return [] if keys is None else [keys]
    if isinstance(node, Not):
        return []
    children = [node.left, node.right] if isinstance(node, Near) else list(node.children)
    return [clause for c in children for clause in required_clauses(c)]


LEARN = 1000  # documents whose words are counted before keys are chosen by how often they really occur

# word -> topics; (prefix length, heads, head -> topics) per length; whether only words are indexed
_Lookup = tuple[
    dict[str, list[int]], frozenset[str], list[tuple[int, frozenset[str], dict[str, list[int]]]], bool
]


class TopicIndex:
    """Matches one document against many topics, evaluating only topics whose keys it contains.

    Keys are first chosen by a static guess (``required_keys``). A name can be far more common in a desk's
    feeds than the guess knows, and every document holding it then runs the topic's predicate in vain, so
    the index counts, over the first ``learn`` documents, how many contain each word a topic could be keyed
    by, and then re-keys each topic by its rarest clause (``required_clauses``). Any clause is sound, so
    this changes which topics are tried, never which match.
    """

    def __init__(self, topics: Sequence[tuple[str, Query]], learn: int = LEARN) -> None:
        self._names = [name for name, _ in topics]
        self._queries = [q for _, q in topics]
        self._compiled = [compile_query(q) for q in self._queries]
        self._preds = [c.pred for c in self._compiled]
        self._always: list[int] = []  # purely negative queries: every document is a candidate
        self._keys: dict[int, frozenset[Key]] = {}
        self._options: dict[int, list[frozenset[Key]]] = {}  # alternatives to the static choice
        for i, q in enumerate(self._queries):
            keys = required_keys(q.root)
            if keys is None:
                self._always.append(i)
                continue
            self._keys[i] = keys
            options = [c for c in required_clauses(q.root) if c and c != keys]
            if options:
                self._options[i] = options
        self._lookup = self._build(self._keys)
        self._counted = frozenset(
            text for opts in self._options.values() for c in (*opts, *self._keys.values()) for _, text in c
        )
        self._df: dict[str, int] = {}
        self._sampled = 0
        self._learn = learn if self._options else 0

    @staticmethod
    def _build(keys_of: dict[int, frozenset[Key]]) -> _Lookup:
        words: dict[str, list[int]] = {}
        # prefixes, bucketed by their first min(len, 4) characters; one bucket table per length
        prefixes: dict[int, dict[str, list[int]]] = {}
        for i in sorted(keys_of):  # topic order, so that each list is sorted
            for is_prefix, text in keys_of[i]:
                if is_prefix:
                    n = min(len(text), _HEAD)
                    prefixes.setdefault(n, {}).setdefault(text[:n], []).append(i)
                else:
                    words.setdefault(text, []).append(i)
        tables = [(n, frozenset(table), table) for n, table in prefixes.items()]
        return words, frozenset(words), tables, not tables

    def __len__(self) -> int:
        return len(self._names)

    def candidates(self, doc: Document) -> list[int]:
        """Indices of the topics that could match ``doc``, in topic order."""
        if self._sampled < self._learn:
            self._count(doc)
        words, word_keys, tables, only_words = self._lookup  # one read: a re-keying swaps the whole tuple
        hit = doc.vocab & word_keys
        if only_words and not self._always and not hit:
            return []
        found = set(self._always)
        for word in hit:
            found.update(words[word])
        for n, heads, table in tables:
            for head in heads.intersection(map(operator.itemgetter(slice(0, n)), doc.vocab)):
                found.update(table[head])
        return sorted(found)

    def _count(self, doc: Document) -> None:
        df = self._df
        for word in doc.vocab & self._counted:
            df[word] = df.get(word, 0) + 1
        self._sampled += 1
        if self._sampled == self._learn:
            self._rekey()

    def _rekey(self) -> None:
        """Each topic keyed by the clause fewest sampled documents held. Prefixes were not counted, so a
        topic keyed by one keeps its key and no clause with one is chosen."""
        df, keys_of = self._df, dict(self._keys)

        def seen(keys: frozenset[Key]) -> float:
            return sum(float("inf") if is_prefix else df.get(text, 0) for is_prefix, text in keys)

        for i, options in self._options.items():
            best = min(options, key=seen)
            if seen(best) < seen(keys_of[i]) < float("inf"):
                keys_of[i] = best
        self._keys = keys_of
        self._lookup = self._build(keys_of)

    def matching(self, doc: Document) -> list[str]:
        """Names of the topics that match, without building Matches (no positions or snippets)."""
        names, preds = self._names, self._preds
        return [names[i] for i in self.candidates(doc) if preds[i](doc)]

    def match(self, doc: Document) -> dict[str, LazyMatch]:
        """The topics that match, each with a Match built only if its terms or snippet are asked for."""
        compiled, names, preds = self._compiled, self._names, self._preds
        return {names[i]: LazyMatch(compiled[i], doc) for i in self.candidates(doc) if preds[i](doc)}
