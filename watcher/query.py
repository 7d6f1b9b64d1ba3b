"""The topic query language: lexer and recursive-descent parser into an immutable, hashable AST.

Grammar (loosest binding first; operators are recognised only in upper case)::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*          adjacency means AND
    unary   := "NOT" unary | near
    near    := primary [("NEAR" | "NEAR/" N) primary]     plain NEAR means NEAR/5
    primary := [field ":"] ( "(" or ")" | '"' phrase '"' | word | "@" alias )
    field   := "title" | "text"                 unqualified terms search both

A word or phrase is folded exactly like item text (watcher/text.py) and becomes a ``Term``: a short
sequence of words that must occur consecutively in one field. ``drone*`` marks a prefix word. A term whose
spelling crosses a letter/digit boundary (FK-3, "FK 3", FK3, CH-92A) is a *code*: its variants are every
joined/split spelling, and a split piece must touch its neighbour through one hyphen or space in the text
(``Word.glued``), so FK-3 = "FK 3" = FK3 whichever way either side writes it.

``NEAR`` operands are terms or parenthesised ORs of terms: proximity between two boolean expressions has
no single meaning, so it is refused with a column rather than guessed. Chains (a NEAR b NEAR c) are refused
for the same reason. Aliases expand to a parenthesised OR of their parsed fragments (they may use other
aliases, not themselves). Nesting is capped at MAX_DEPTH levels so that no input can exhaust the stack.

A consequence of codes worth knowing: ``"Expo 2027"`` is a code too (letters then digits), so it matches
"Expo 2027", "Expo-2027" and "EXPO2027" but not "Expo, 2027".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from watcher.errors import QuerySyntaxError
from watcher.text import tokens

DEFAULT_NEAR = 5
MAX_NEAR = 1000
MAX_DEPTH = 64
_MAX_SPLIT_VARIANTS = 3  # codes with more letter/digit boundaries only get joined, as-written and split forms
_CODE_PIECE = re.compile(r"[a-z]+|[0-9]+")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALIAS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_NEAR_OP = re.compile(r"NEAR(?:/(.*))?")


class Scope(StrEnum):
    ANY = "any"  # title or text
    TITLE = "title"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Word:
    text: str  # folded
    prefix: bool = False  # `word*`
    glued: bool = False  # must touch the previous word through one hyphen/space (a split code)


@dataclass(frozen=True, slots=True)
class Term:
    """Leaf: any one of ``variants`` (each a run of consecutive words) occurring in an allowed field."""

    source: str  # as written in the query or alias: FK-3, drone*, "Hong Qi 22"
    variants: tuple[tuple[Word, ...], ...]
    scope: Scope = Scope.ANY


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Near:
    """``left`` and ``right`` occur in the same field with at most ``distance`` tokens between their
    nearest ends (adjacent tokens are 1 apart), in either order. Operands are Terms or Ors of Terms."""

    left: Node
    right: Node
    distance: int


Node = Term | And | Or | Not | Near


@dataclass(frozen=True, slots=True)
class Query:
    source: str
    root: Node
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        # Cached: matching looks compiled queries up by query, and hashing the tree each time is not free.
        if not self._hash:
            object.__setattr__(self, "_hash", hash((self.source, self.root)) or 1)
        return self._hash

    def __reduce__(self) -> tuple[type[Query], tuple[str, Node]]:
        # Never carry the cached hash to another process: string hashes differ between processes.
        return (Query, (self.source, self.root))

    def terms(self) -> tuple[Term, ...]:
        """Every leaf in query order, including those under NOT."""
        return tuple(iter_terms(self.root))

    def __str__(self) -> str:
        return self.source


def iter_terms(node: Node) -> Iterator[Term]:
    if isinstance(node, Term):
        yield node
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from iter_terms(child)
    elif isinstance(node, Not):
        yield from iter_terms(node.child)
    else:
        yield from iter_terms(node.left)
        yield from iter_terms(node.right)


def parse_query(source: str, aliases: Mapping[str, Sequence[str]] | None = None) -> Query:
    """Parse ``source``; raise QuerySyntaxError naming the 1-based column of the first problem."""
    return Query(source, _Parser(source, aliases or {}, ()).parse())


# --- lexer ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lex:
    kind: str  # ( ) AND OR NOT NEAR WORD PHRASE FIELD ALIAS END
    text: str  # raw text (for WORD/PHRASE without quotes; FIELD/ALIAS without : and @)
    col: int  # 1-based
    value: int = 0  # NEAR distance


def _lex(src: str) -> list[_Lex]:
    out: list[_Lex] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Lex(ch, ch, i + 1))
            i += 1
        elif ch == '"':
            close = src.find('"', i + 1)
            if close < 0:
                raise QuerySyntaxError(src, i + 1, "unterminated quote")
            out.append(_Lex("PHRASE", src[i + 1 : close], i + 1))
            i = close + 1
        elif ch == "@":
            m = _ALIAS_NAME.match(src, i + 1)
            if not m:
                raise QuerySyntaxError(src, i + 1, "@ must be followed by an alias name")
            out.append(_Lex("ALIAS", m.group(), i + 1))
            i = m.end()
        else:
            j = i
            while j < n and not src[j].isspace() and src[j] not in '()"':
                j += 1
            chunk = src[i:j]
            m = _FIELD_NAME.match(chunk)
            if m and chunk[m.end() : m.end() + 1] == ":":
                name = m.group()
                if name.lower() not in ("title", "text"):
                    raise QuerySyntaxError(src, i + 1, f"unknown field {name!r} (use title: or text:)")
                out.append(_Lex("FIELD", name.lower(), i + 1))
                i += m.end() + 1
                continue
            near = _NEAR_OP.fullmatch(chunk)
            if chunk in ("AND", "OR", "NOT"):
                out.append(_Lex(chunk, chunk, i + 1))
            elif near:
                out.append(_Lex("NEAR", chunk, i + 1, _near_distance(src, i, near.group(1))))
            else:
                out.append(_Lex("WORD", chunk, i + 1))
            i = j
    out.append(_Lex("END", "", n + 1))
    return out


def _near_distance(src: str, i: int, raw: str | None) -> int:
    if raw is None:
        return DEFAULT_NEAR
    col = i + 6  # first character after "NEAR/"
    if not raw.isascii() or not raw.isdigit():
        raise QuerySyntaxError(src, col, f"NEAR/ needs a whole number of words, got {raw!r}")
    value = int(raw)
    if not 1 <= value <= MAX_NEAR:
        raise QuerySyntaxError(src, col, f"NEAR distance must be between 1 and {MAX_NEAR}, got {value}")
    return value


# --- parser --------------------------------------------------------------------------------------------


class _Parser:
    def __init__(
        self, src: str, aliases: Mapping[str, Sequence[str]], expanding: tuple[str, ...], depth: int = 0
    ) -> None:
        self.src = src
        self.aliases = aliases
        self.expanding = expanding  # alias names being expanded, to refuse cycles
        self.lexes: list[_Lex] = []
        self.pos = 0
        self.depth = depth  # nesting of groups, NOTs and aliases, bounded so no input can exhaust the stack

    def nest(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(col, f"query nested more than {MAX_DEPTH} levels deep")

    def error(self, col: int, message: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.src, col, message)

    def parse(self) -> Node:
        if not self.src.strip():
            raise self.error(1, "empty query")
        self.lexes = _lex(self.src)
        node = self.parse_or(Scope.ANY)
        tok = self.peek()
        if tok.kind == ")":
            raise self.error(tok.col, "unbalanced parenthesis (nothing to close)")
        if tok.kind != "END":  # unreachable by the grammar, kept as a guard against silent truncation
            raise self.error(tok.col, f"unexpected {tok.text!r}")
        return node

    def peek(self) -> _Lex:
        return self.lexes[self.pos]

    def take(self) -> _Lex:
        tok = self.lexes[self.pos]
        self.pos += 1
        return tok

    def parse_or(self, scope: Scope) -> Node:
        children = [self.parse_and(scope)]
        while self.peek().kind == "OR":
            op = self.take()
            self.expect_operand(op)
            children.append(self.parse_and(scope))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self, scope: Scope) -> Node:
        children = [self.parse_unary(scope)]
        while True:
            tok = self.peek()
            if tok.kind == "AND":
                self.take()
                self.expect_operand(tok)
            elif tok.kind not in ("WORD", "PHRASE", "FIELD", "ALIAS", "(", "NOT"):
                break
            children.append(self.parse_unary(scope))
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_unary(self, scope: Scope) -> Node:
        tok = self.peek()
        if tok.kind == "NOT":
            self.take()
            self.expect_operand(tok)
            self.nest(tok.col)
            node = Not(self.parse_unary(scope))
            self.depth -= 1
            return node
        return self.parse_near(scope)

    def parse_near(self, scope: Scope) -> Node:
        left_col = self.peek().col
        left = self.parse_primary(scope)
        if self.peek().kind != "NEAR":
            return left
        op = self.take()
        self.expect_operand(op)
        right_col = self.peek().col
        right = self.parse_primary(scope)
        for node, col in ((left, left_col), (right, right_col)):
            if not _near_operand(node):
                raise self.error(col, "NEAR operands must be terms, phrases or a parenthesised OR of them")
        if self.peek().kind == "NEAR":
            raise self.error(self.peek().col, "NEAR cannot be chained; combine pairs with AND")
        return Near(left, right, op.value)

    def expect_operand(self, op: _Lex) -> None:
        """Refuse an operator with nothing usable after it (a AND, a OR ) ...)."""
        nxt = self.peek()
        if nxt.kind in ("END", ")", "AND", "OR", "NEAR"):
            raise self.error(op.col, f"{op.text} needs a term after it")

    def parse_primary(self, scope: Scope) -> Node:
        tok = self.take()
        if tok.kind == "FIELD":
            inner = Scope(tok.text)
            if scope is not Scope.ANY and inner is not scope:
                raise self.error(tok.col, f"{tok.text}: inside {scope.value}: can never match")
            if self.peek().kind in ("END", ")", "AND", "OR", "NEAR", "NOT", "FIELD"):
                raise self.error(tok.col, f"{tok.text}: needs a term, phrase or group after it")
            return self.parse_primary(inner)
        if tok.kind == "(":
            if self.peek().kind == ")":
                raise self.error(tok.col, "empty parentheses")
            self.nest(tok.col)
            node = self.parse_or(scope)
            if self.peek().kind != ")":
                raise self.error(tok.col, "unbalanced parenthesis (never closed)")
            self.take()
            self.depth -= 1
            return node
        if tok.kind == "WORD":
            return self.term(tok, tok.text, tok.text, scope)
        if tok.kind == "PHRASE":
            return self.term(tok, tok.text, f'"{tok.text}"', scope)
        if tok.kind == "ALIAS":
            return self.alias(tok, scope)
        if tok.kind in ("AND", "OR", "NEAR"):
            raise self.error(tok.col, f"{tok.text} needs a term before it")
        if tok.kind == ")":
            raise self.error(tok.col, "unbalanced parenthesis (nothing to close)")
        raise self.error(tok.col, "expected a term")

    def term(self, tok: _Lex, body: str, source: str, scope: Scope) -> Term:
        words: list[Word] = []
        for m in re.finditer(r"\S+", body):
            chunk = m.group()
            star = chunk.find("*")
            if star >= 0 and (star != len(chunk) - 1 or not tokens(chunk[:-1])):
                col = tok.col + (1 if tok.kind == "PHRASE" else 0) + m.start() + star
                if star != len(chunk) - 1:
                    raise self.error(col, "* is only allowed at the end of a word")
                raise self.error(col, "* needs letters or digits before it")
            parts = tokens(chunk[:-1] if star >= 0 else chunk)
            words.extend(Word(p) for p in parts)
            if star >= 0:
                words[-1] = Word(words[-1].text, prefix=True)
        if not words:
            what = "phrase" if tok.kind == "PHRASE" else "term"
            raise self.error(tok.col, f"{what} {source} has no letters or digits to match")
        return Term(source, _code_variants(words), scope)

    def alias(self, tok: _Lex, scope: Scope) -> Node:
        name = tok.text
        if name not in self.aliases:
            raise self.error(tok.col, f"unknown alias @{name}")
        if name in self.expanding:
            raise self.error(tok.col, f"alias @{name} refers to itself")
        fragments = self.aliases[name]
        if isinstance(fragments, str):  # a lone string would otherwise expand letter by letter
            fragments = [fragments]
        if not fragments:
            raise self.error(tok.col, f"alias @{name} is empty")
        self.nest(tok.col)
        nodes: list[Node] = []
        for fragment in fragments:
            sub = _Parser(fragment, self.aliases, (*self.expanding, name), self.depth)
            try:
                node = sub.parse()
            except QuerySyntaxError as e:
                msg = f"in alias @{name}, fragment {fragment!r}: {e.detail} at column {e.column}"
                raise self.error(tok.col, msg) from None
            nodes.append(self.rescope(node, scope, tok.col, name))
        self.depth -= 1
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def rescope(self, node: Node, scope: Scope, col: int, name: str) -> Node:
        """Push an outer ``title:``/``text:`` into an alias's leaves."""
        if scope is Scope.ANY:
            return node
        if isinstance(node, Term):
            if node.scope is not Scope.ANY and node.scope is not scope:
                raise self.error(col, f"alias @{name} uses {node.scope.value}: inside {scope.value}:")
            return Term(node.source, node.variants, scope)
        if isinstance(node, And | Or):
            children = tuple(self.rescope(c, scope, col, name) for c in node.children)
            return And(children) if isinstance(node, And) else Or(children)
        if isinstance(node, Not):
            return Not(self.rescope(node.child, scope, col, name))
        left = self.rescope(node.left, scope, col, name)
        return Near(left, self.rescope(node.right, scope, col, name), node.distance)


def _near_operand(node: Node) -> bool:
    if isinstance(node, Term):
        return True
    return isinstance(node, Or) and all(_near_operand(c) for c in node.children)


def _kind(ch: str) -> str:
    return "d" if ch.isdigit() else "a"


def _code_variants(words: list[Word]) -> tuple[tuple[Word, ...], ...]:
    """Every joined/split spelling of a term's letter/digit boundaries; the fully joined one first.

    Pieces are letter runs and digit runs. A boundary between two pieces is a code boundary when it is a
    letter/digit change; a letter/letter or digit/digit gap between written words stays a plain phrase gap.
    """
    pieces: list[str] = []
    code_gap: list[bool] = []  # before pieces[k] (k >= 1): is this a code boundary?
    written_split: list[bool] = []  # ...and was it written split in the query?
    for w in words:
        runs = _CODE_PIECE.findall(w.text)
        for j, run in enumerate(runs):
            if pieces:
                code_gap.append(_kind(run[0]) != _kind(pieces[-1][-1]))
                written_split.append(j == 0)
            pieces.append(run)
    prefix = words[-1].prefix
    codes = [k for k, is_code in enumerate(code_gap) if is_code]
    if not codes:
        return (tuple(words),)
    if len(codes) <= _MAX_SPLIT_VARIANTS:
        choices = list(itertools.product((True, False), repeat=len(codes)))  # True = joined
    else:
        as_written = tuple(not written_split[k] for k in codes)
        choices = list(dict.fromkeys([(True,) * len(codes), as_written, (False,) * len(codes)]))
    variants: list[tuple[Word, ...]] = []
    for choice in choices:
        joined = dict(zip(codes, choice, strict=True))
        out: list[Word] = []
        text, glued = pieces[0], False
        for k in range(1, len(pieces)):
            gap = k - 1
            if joined.get(gap):
                text += pieces[k]
            else:
                out.append(Word(text, glued=glued))
                text, glued = pieces[k], gap in joined
        out.append(Word(text, prefix=prefix, glued=glued))
        variants.append(tuple(out))
    return tuple(dict.fromkeys(variants))
