"""Throughput of topic matching: prepare() alone, then prepare() + TopicIndex for 10/100/1,000 topics.

Items are synthetic but shaped like a Serbian/English news mix: a third each English, Serbian Latin and
Serbian Cyrillic; titles of 6-12 words and bodies of 50-150 words; Zipf-distributed common words; a large
pool of person/place names (some famous and frequent, most rare); domain nouns with inflections; weapon-style
codes written as FK-3, FK 3 or FK3. Topics mix the shapes analysts write: ORs of names in several scripts,
wildcards, phrases, codes, aliases, NEAR and NOT; 30% of their names are among the 200 most frequent.

Two figures per topic count:

* "verdicts": prepare + which topics match (TopicIndex.matching); what a caller that stores no hit pays;
* "with Matches": prepare + TopicIndex.match + a concrete Match (terms, marked snippet, field) for every
  hit, exactly as ``watcher.pipeline.analyse_items`` does before it hands matches to the writer. At 1,000
  topics about 40% of items match some topic, so building Matches is a large share of the work; the hit
  rate is printed next to the figures.

Timings are for a warm process: the fold caches are first filled from separate warm-up items (a tenth as
many), as they would be in a running daemon; the measured items still bring unseen rare words. Each figure
is the median of ``--repeat`` runs of CPU time of this process (time.process_time), so that other load on a
shared machine disturbs it less than wall time would; the cyclic GC runs as usual.

    python bench/bench_match.py                 # 100,000 items, 3 runs each
    python bench/bench_match.py --items 20000   # quicker
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watcher.match import prepare
from watcher.models import Match
from watcher.query import Query, parse_query
from watcher.topicindex import TopicIndex

ENGLISH = """the of and to in a is that for on was with he it as by at from his an were are which this be has
had not but have its after they who been their one new also more two first year said will would than other
people over into most some when only government minister president state country could about there city
officials week time last told police news report between while since during under three before against
security military public support national foreign international economic talks meeting visit agreement
deal plan project company market energy price prices growth workers union election party opposition
parliament court law decision region border capital leaders statement press according sources spokesman
monday tuesday wednesday thursday friday saturday sunday today yesterday morning evening""".split()
SERBIAN = """je i u da se na za su od sa što kao iz to ne biti bio bila koji koja koje ali ili godine posle
pre tokom protiv između danas juče sutra predsednik vlada ministar država grad zemlja ljudi rekao rekla
izjavio saopštio prema izvorima sastanak poseta sporazum projekat kompanija tržište cene rast radnici
izbori stranka opozicija skupština sud zakon odluka region granica glavni lideri saradnja bezbednost
vojska javnost podrška nacionalni strani međunarodni ekonomski razgovori ponedeljak utorak sreda četvrtak
petak subota nedelja jutro veče novi nova novo dva tri prvi godina rok vest izveštaj policija grada""".split()
DOMAIN = {
    "en": """drone drones missile missiles system air defence battery batteries launcher radar investment
    loan railway highway factory mine lithium copper steel bank embassy sanction sanctions vaccine army
    exercise purchase delivery contract""".split(),
    "sr": """dron dronovi dronove rakete raketa raketni sistem sistema odbrana protivvazdušna baterija
    lanseri radar radari investicije kredit pruga autoput fabrika rudnik litijum bakar čelik banka ambasada
    sankcije vakcina vojska vežba nabavka isporuka ugovor""".split(),
}
SPORT = {
    "en": "football match goal league coach".split(),
    "sr": "fudbal utakmica gol liga trener".split(),
}
SYLLABLES = """vu či ć al ek san dar mi lo še vić ra do jo van ni ko la đo ki na be o grad no vi sad pe
tar mar ko ja sna sto ja no vić dra gan bra ni sla va ze mun ša bac le sko vac kra gu je vac xi jin ping
li wen hu ang zhou bei jing shang hai wu han""".split()
LETTERS = "FK HQ CH WJ GJ TB KJ LY Su MiG Mi BTR M J S".split()

_CYR = [("dž", "џ"), ("lj", "љ"), ("nj", "њ"), ("đ", "ђ"), *zip("abvgdežzijklmnoprstćufhcčš", "абвгдежзијклмнопрстћуфхцчш", strict=True)]  # fmt: skip


def cyrillic(word: str) -> str:
    out, i, lower = [], 0, word.lower()
    while i < len(lower):
        for latin, cyr in _CYR:
            if lower.startswith(latin, i):
                out.append(cyr)
                i += len(latin)
                break
        else:
            out.append(lower[i])
            i += 1
    s = "".join(out)
    return s[:1].upper() + s[1:] if word[:1].isupper() else s


def zipf_weights(n: int, s: float = 1.05) -> list[float]:
    return list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))


class Corpus:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.names = sorted(
            {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))).capitalize() for _ in range(8000)}
        )
        rng.shuffle(self.names)
        self.codes = sorted({f"{rng.choice(LETTERS)}-{rng.randint(1, 99)}" for _ in range(300)})
        self.name_w = zipf_weights(len(self.names), 0.9)
        self.common = {"en": ENGLISH, "sr": SERBIAN}
        self.common_w = {k: zipf_weights(len(v)) for k, v in self.common.items()}

    def words(self, lang: str, n: int) -> list[str]:
        rng = self.rng
        base = rng.choices(self.common[lang], cum_weights=self.common_w[lang], k=n)
        for i in range(n):
            r = rng.random()
            if r < 0.07:
                base[i] = rng.choices(self.names, cum_weights=self.name_w)[0]
            elif r < 0.11:
                base[i] = rng.choice(DOMAIN[lang])
            elif r < 0.115:
                base[i] = self.code(rng.choice(self.codes))
            elif r < 0.12:
                base[i] = rng.choice(SPORT[lang])
            elif r < 0.20:
                base[i] += rng.choice([",", ".", ":", "'s" if lang == "en" else ","])
        return base

    def code(self, code: str) -> str:
        style = self.rng.random()
        return code if style < 0.6 else code.replace("-", " ") if style < 0.8 else code.replace("-", "")

    def item(self) -> tuple[str, str]:
        rng = self.rng
        lang = rng.choice(["en", "sr", "sr-cyr"])
        common = "en" if lang == "en" else "sr"
        title = " ".join(self.words(common, rng.randint(6, 12)))
        body = " ".join(self.words(common, rng.randint(50, 150)))
        if lang == "sr-cyr":
            title = " ".join(cyrillic(w) if not w[:1].isdigit() else w for w in title.split(" "))
            body = " ".join(cyrillic(w) if not w[:1].isdigit() else w for w in body.split(" "))
        return title.capitalize(), body.capitalize() + "."

    def name(self, famous: bool = False) -> str:
        if famous:
            return self.rng.choice(self.names[:200])
        return self.rng.choice(self.names[200:])

    def topic(self, aliases: dict[str, list[str]]) -> str:
        rng = self.rng
        n1, n2, n3 = (self.name(rng.random() < 0.3) for _ in range(3))
        lang = rng.choice(["en", "sr"])
        d1, d2 = rng.sample(DOMAIN[lang], 2)
        sport = SPORT[lang]
        code = rng.choice(self.codes)
        shape = rng.randrange(6)
        if shape == 0:
            return f'({n1} OR {cyrillic(n1)} OR {n2}) AND ({d1[:5]}* OR {d2} OR "{code}")'
        if shape == 1:
            return f'"{n1} {n2}" NEAR/5 ({d1[:4]}* OR {d2})'
        if shape == 2:
            return f"{n1} {d1[:5]}* NOT ({rng.choice(sport)} OR {rng.choice(sport)})"
        if shape == 3:
            return f"title:{n1} OR ({n2} AND {code})"
        if shape == 4:
            alias = f"a{len(aliases)}"
            aliases[alias] = [code, code.replace("-", ""), f'"{n3} {code.split("-")[1]}"']
            return f"({n1} OR {cyrillic(n2)}) AND (@{alias} OR {d1})"
        return f"{n1} NEAR/3 {n2} NOT title:{rng.choice(sport)}"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} items/s"


def timed(repeat: int, run: Callable[[], object]) -> float:
    """Median CPU seconds of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        run()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--topics", default="10,100,1000", help="comma-separated topic counts")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    corpus = Corpus(rng)
    t0 = time.perf_counter()
    items = [corpus.item() for _ in range(args.items)]
    words = sum(len(t.split()) + len(x.split()) for t, x in items)
    print(
        f"generated {len(items):,} items ({words / len(items):.0f} words each) in {time.perf_counter() - t0:.1f}s"
    )

    for _ in range(max(1000, args.items // 10)):
        prepare(*corpus.item())

    def prepare_only() -> None:
        for title, text in items:  # each document dropped at once, as the pipeline does
            prepare(title, text)

    print(f"prepare only:            {rate(len(items), timed(args.repeat, prepare_only))}")

    for count in (int(c) for c in args.topics.split(",")):
        aliases: dict[str, list[str]] = {}
        sources = [corpus.topic(aliases) for _ in range(count)]
        t0 = time.perf_counter()
        topics: list[tuple[str, Query]] = [(f"t{i}", parse_query(s, aliases)) for i, s in enumerate(sources)]
        index = TopicIndex(topics)
        build = time.perf_counter() - t0

        def verdicts(index: TopicIndex = index) -> None:
            for title, text in items:
                index.matching(prepare(title, text))

        def with_matches(index: TopicIndex = index) -> tuple[int, int]:
            hits = matched_items = 0
            for title, text in items:
                found = index.match(prepare(title, text))
                # what analyse_items sends the writer for each hit
                matches = {
                    n: Match(terms=m.terms, snippet=m.snippet, field=m.field) for n, m in found.items()
                }
                hits += len(matches)
                matched_items += bool(found)
            return hits, matched_items

        hits, matched_items = with_matches()
        full = timed(args.repeat, with_matches)
        bare = timed(args.repeat, verdicts)
        sample = [prepare(t, x) for t, x in items[:2000]]
        candidates = sum(len(index.candidates(d)) for d in sample) / len(sample)
        print(
            f"{count:>5} topics: verdicts {rate(len(items), bare)} | with Matches {rate(len(items), full)}"
            f"  (parse+index {build * 1000:.0f} ms, {candidates:.1f} candidates/item,"
            f" {matched_items / len(items):.1%} items matched, {hits / len(items):.2f} hits/item)"
        )


if __name__ == "__main__":
    main()
