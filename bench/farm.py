"""A farm of realistic news feeds on disk, for benchmarking a whole poll cycle against other feed readers.

Every feed is a pure function of (seed, feed number, first item, item count), so the farm is deterministic and
a mutation needs to remember only where each feed's window of items starts. The manifest (``farm.json``)
records that; ``mutate`` slides the window of exactly K % of the feeds: new items at the top, as many old
ones dropped, which is what a news feed looks like between two polls.

What makes the feeds realistic enough for matching and dedup to do real work:

* RSS 2.0 (about two thirds, WordPress-like: ``atom:link rel=self``, ``dc:creator``, categories, HTML
  descriptions as CDATA or escaped text) and Atom 1.0 (HTML summaries and content);
* 30–60 items each, 20–120 KB per file, bodies of 2–6 paragraphs with links and emphasis;
* half the feeds English, a quarter Serbian Latin (with diacritics), a quarter Serbian Cyrillic;
* Zipf-distributed vocabulary plus a long tail of generated names, domain words, and weapon-style codes
  written ``FK-3``, ``FK 3`` or ``FK3``, so topic queries have real matches and real misses;
* about one item in six is a wire story republished by other outlets of the same language: a third keep the
  wire's GUID, the rest get their own GUID and link and a slightly different ending (near-duplicates).

    python bench/farm.py DIR --feeds 500            # generate
    python bench/farm.py DIR --mutate 10            # next cycle: 10 % of the feeds changed
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

MANIFEST = "farm.json"
FEEDS_DIR = "feeds"
WIRE_SHARE = 6  # one item in WIRE_SHARE is a wire story
ITEM_MINUTES = 20  # items of one feed are this far apart, newest first
NEWEST = 2000  # sequence number of an item published at the farm's base time

ENGLISH = """the of and to in a is that for on was with he it as by at from his an were are which this be
has had not but have its after they who been their one new also more two first year said will would than
other people over into most some when only government minister president state country could about there
city officials week time last told police news report between while since during under three before against
security military public support national foreign international economic talks meeting visit agreement deal
plan project company market energy price prices growth workers union election party opposition parliament
court law decision region border capital leaders statement press according sources spokesman monday tuesday
wednesday thursday friday saturday sunday today yesterday morning evening local council budget tax reform
health hospital school students teachers water river bridge road traffic weather storm flood fire rescue
trade exports imports industry farmers harvest tourism hotel airport flight train station museum festival
concert film award team season player coach match league cup final victory defeat goal scored points
""".split()
SERBIAN = """je i u da se na za su od sa što kao iz to ne biti bio bila koji koja koje ali ili godine posle
pre tokom protiv između danas juče sutra predsednik vlada ministar država grad zemlja ljudi rekao rekla
izjavio saopštio prema izvorima sastanak poseta sporazum projekat kompanija tržište cene rast radnici izbori
stranka opozicija skupština sud zakon odluka region granica glavni lideri saradnja bezbednost vojska javnost
podrška nacionalni strani međunarodni ekonomski razgovori ponedeljak utorak sreda četvrtak petak subota
nedelja jutro veče novi nova novo dva tri prvi godina rok vest izveštaj policija opština budžet porez
reforma zdravlje bolnica škola učenici nastavnici voda reka most put saobraćaj vreme oluja poplava požar
spasavanje trgovina izvoz uvoz industrija poljoprivrednici žetva turizam hotel aerodrom let voz stanica
muzej festival koncert film nagrada tim sezona igrač trener utakmica liga kup finale pobeda poraz gol
""".split()
DOMAIN = {
    "en": """drone drones missile missiles system air defence battery batteries launcher radar investment loan
    railway highway factory mine lithium copper steel bank embassy sanctions vaccine army exercise purchase
    delivery contract weapons arms""".split(),
    "sr": """dron dronovi dronove rakete raketa raketni sistem sistema odbrana protivvazdušna baterija lanseri
    radar radari investicije kredit pruga autoput fabrika rudnik litijum bakar čelik banka ambasada sankcije
    vakcina vojska vežba nabavka isporuka ugovor naoružanje""".split(),
}
PLACES = {
    "en": "Serbia Belgrade China Beijing Russia Moscow Kosovo Bosnia Hungary Germany Brussels Novi Sad".split(),
    "sr": "Srbija Beograd Kina Peking Rusija Moskva Kosovo Bosna Mađarska Nemačka Brisel Niš".split(),
}
FAMOUS = ["Vučić", "Brnabić", "Dačić", "Xi Jinping", "Putin", "Orbán", "Scholz", "Macron"]
CODES = ["FK-3", "FK 3", "FK3", "HQ-22", "HQ 22", "CH-92A", "CH-95", "Pantsir S1", "Wing Loong"]
SYLLABLES = """vu či ć al ek san dar mi lo še vić ra do jo van ni ko la đo ki na be o grad no vi sad pe tar
mar ko ja sna sto dra gan bra sla va ze mun ša bac le sko kra gu je vac li wen hu ang zhou""".split()
SECTIONS = {
    "en": ["Politics", "World", "Business", "Sport", "Culture"],
    "sr": ["Politika", "Svet", "Ekonomija"],
}

# Serbian Latin -> Cyrillic; digraphs first. Written here rather than imported: the farm must not depend on
# the code it measures.
_DIGRAPHS = {
    "lj": "љ",
    "nj": "њ",
    "dž": "џ",
    "Lj": "Љ",
    "Nj": "Њ",
    "Dž": "Џ",
    "LJ": "Љ",
    "NJ": "Њ",
    "DŽ": "Џ",
}
_LETTERS = dict(
    zip(
        "abvgdđežzijklmnoprstćufhcčšABVGDĐEŽZIJKLMNOPRSTĆUFHCČŠ",
        "абвгдђежзијклмнопрстћуфхцчшАБВГДЂЕЖЗИЈКЛМНОПРСТЋУФХЦЧШ",
        strict=True,
    )
)


def cyrillic(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _DIGRAPHS:
            out.append(_DIGRAPHS[pair])
            i += 2
        else:
            out.append(_LETTERS.get(text[i], text[i]))
            i += 1
    return "".join(out)


@dataclass
class FeedSpec:
    """One feed of the farm; its file is a pure function of these fields and the farm's seed."""

    number: int
    kind: str  # rss | atom
    lang: str  # en | sr-latn | sr-cyrl
    start: int  # sequence number of the oldest item shown
    count: int  # items shown
    words: int  # mean body length in words: spreads files over 20-120 KB
    cdata: bool  # rss: descriptions as CDATA (else escaped HTML)
    version: int = 0  # bumped by mutate; part of the file's mtime

    @property
    def filename(self) -> str:
        return f"f{self.number:05d}.{self.kind}"

    @property
    def base_lang(self) -> str:
        return "en" if self.lang == "en" else "sr"


@dataclass(frozen=True)
class Story:
    title: str
    paragraphs: tuple[str, ...]
    author: str
    section: str


class _Words:
    """Zipf-weighted word choice per language, from a per-item random generator."""

    def __init__(self) -> None:
        rng = random.Random(7)
        self.names = [
            "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize() for _ in range(3000)
        ]
        self.common = {"en": ENGLISH, "sr": SERBIAN}
        self.cum = {
            lang: list(_cumulative([1.0 / (r + 1) ** 1.05 for r in range(len(words))]))
            for lang, words in self.common.items()
        }

    def word(self, rng: random.Random, lang: str) -> str:
        roll = rng.random()
        if roll < 0.93:
            return rng.choices(self.common[lang], cum_weights=self.cum[lang])[0]
        if roll < 0.95:
            return rng.choice(DOMAIN[lang])
        if roll < 0.985:
            return rng.choice(self.names)  # the long tail of rare names
        if roll < 0.996:
            return rng.choice(PLACES[lang])
        if roll < 0.999:
            return rng.choice(FAMOUS)
        return rng.choice(CODES)

    def sentence(self, rng: random.Random, lang: str, n: int) -> str:
        words = [self.word(rng, lang) for _ in range(n)]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.choice([2, 3, 5, 12, 15, 40, 120, 1500])))
        text = " ".join(words)
        return text[0].upper() + text[1:] + "."


def _cumulative(weights: Sequence[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


WORDS = _Words()


def _story(rng: random.Random, lang: str, words: int) -> Story:
    title = WORDS.sentence(rng, lang, rng.randint(6, 12)).rstrip(".")
    n = max(20, int(rng.gauss(words, words / 4)))
    paragraphs: list[str] = []
    while n > 0:
        size = min(n, rng.randint(25, 70))
        sentences = []
        left = size
        while left > 0:
            k = min(left, rng.randint(8, 20))
            sentences.append(WORDS.sentence(rng, lang, k))
            left -= k
        paragraphs.append(" ".join(sentences))
        n -= size
    author = " ".join(rng.choice(WORDS.names) for _ in range(2))
    return Story(title, tuple(paragraphs), author, rng.choice(SECTIONS[lang]))


def wire_story(seed: int, lang: str, number: int) -> Story:
    return _story(random.Random(f"{seed}:wire:{lang}:{number}"), lang, 120)


@dataclass(frozen=True)
class Entry:
    guid: str
    permalink: bool
    link: str
    story: Story
    published: datetime


def entry(seed: int, feed: FeedSpec, k: int, base: datetime, wires: int) -> Entry:
    """Item number ``k`` of ``feed``: a pure function, so a mutated feed shows the same old items."""
    rng = random.Random(f"{seed}:{feed.number}:{k}")
    host = f"outlet{feed.number}.example"
    published = base - timedelta(minutes=ITEM_MINUTES * (NEWEST - k), seconds=feed.number)
    lang = feed.base_lang
    if rng.randrange(WIRE_SHARE) == 0:
        # Outlets carry a wire story in the same slot of their sequence (hence at about the same time), and a
        # feed never carries one story twice; `wires` stories per slot gives ~3 copies of each.
        w = k * wires + rng.randrange(wires)
        story = wire_story(seed, lang, w)
        if rng.random() < 1 / 3:
            link = f"https://wire.example/{lang}/{w}"
            guid = f"urn:wire:{lang}:{w}"
            return Entry(guid, False, link, _localise(story, feed), published)
        ending = WORDS.sentence(rng, lang, rng.randint(6, 12))
        story = Story(story.title, (*story.paragraphs, ending), story.author, story.section)
    else:
        story = _story(rng, lang, feed.words)
    slug = "-".join(story.title.lower().split()[:6])
    link = f"https://{host}/{story.section.lower()}/{k}/{slug}"
    if rng.random() < 0.5:
        return Entry(link, True, link, _localise(story, feed), published)
    return Entry(f"{host}-{k}", False, link, _localise(story, feed), published)


def _localise(story: Story, feed: FeedSpec) -> Story:
    if feed.lang != "sr-cyrl":
        return story
    return Story(
        cyrillic(story.title), tuple(cyrillic(p) for p in story.paragraphs), cyrillic(story.author),
        cyrillic(story.section),
    )  # fmt: skip


def _html_body(story: Story, link: str, rng: random.Random) -> str:
    parts = []
    for i, p in enumerate(story.paragraphs):
        words = p.split(" ")
        if len(words) > 8 and rng.random() < 0.5:
            j = rng.randrange(1, len(words) - 3)
            words[j] = f"<strong>{html.escape(words[j])}</strong>"
            words[j + 2] = f'<a href="{html.escape(link)}?p={i}">{html.escape(words[j + 2])}</a>'
            p = " ".join(w if w.startswith("<") else html.escape(w) for w in words)
        else:
            p = html.escape(p)
        parts.append(f"<p>{p}</p>")
    return "\n".join(parts)


def render(seed: int, feed: FeedSpec, base: datetime, wires: int) -> bytes:
    entries = [
        entry(seed, feed, k, base, wires) for k in range(feed.start + feed.count - 1, feed.start - 1, -1)
    ]
    rng = random.Random(f"{seed}:{feed.number}:html:{feed.start}")
    title = f"Outlet {feed.number} ({feed.lang})"
    home = f"https://outlet{feed.number}.example/"
    updated = entries[0].published if entries else base
    if feed.kind == "atom":
        return _atom(feed, entries, title, home, updated, rng)
    return _rss(feed, entries, title, home, updated, rng)


def _rss(
    feed: FeedSpec, entries: list[Entry], title: str, home: str, updated: datetime, rng: random.Random
) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">\n<channel>\n'
        f"<title>{escape(title)}</title>\n<link>{home}</link>\n"
        f'<atom:link href="{home}feed/" rel="self" type="application/rss+xml"/>\n'
        f"<description>News from outlet {feed.number}</description>\n"
        f"<language>{feed.lang}</language>\n<lastBuildDate>{format_datetime(updated)}</lastBuildDate>\n"
        "<sy:updatePeriod>hourly</sy:updatePeriod>\n<generator>farm</generator>\n"
    ]
    for e in entries:
        body = _html_body(e.story, e.link, rng)
        desc = f"<![CDATA[{body}]]>" if feed.cdata else escape(body)
        permalink = "true" if e.permalink else "false"
        out.append(
            f"<item>\n<title>{escape(e.story.title)}</title>\n<link>{escape(e.link)}</link>\n"
            f"<dc:creator>{escape(e.story.author)}</dc:creator>\n<pubDate>{format_datetime(e.published)}</pubDate>\n"
            f"<category>{escape(e.story.section)}</category>\n"
            f'<guid isPermaLink="{permalink}">{escape(e.guid)}</guid>\n'
            f"<description>{desc}</description>\n</item>\n"
        )
    out.append("</channel>\n</rss>\n")
    return "".join(out).encode()


def _atom(
    feed: FeedSpec, entries: list[Entry], title: str, home: str, updated: datetime, rng: random.Random
) -> bytes:
    out = [
        f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{feed.lang}">\n'
        f'<title>{escape(title)}</title>\n<link href="{home}"/>\n'
        f'<link rel="self" href="{home}atom.xml"/>\n<id>{home}</id>\n'
        f"<updated>{updated.isoformat()}</updated>\n<generator>farm</generator>\n"
    ]
    for e in entries:
        body = _html_body(e.story, e.link, rng)
        lead = html.escape(e.story.paragraphs[0][:200])
        out.append(
            f"<entry>\n<title>{escape(e.story.title)}</title>\n"
            f'<link rel="alternate" type="text/html" href="{escape(e.link)}"/>\n<id>{escape(e.guid)}</id>\n'
            f"<published>{e.published.isoformat()}</published>\n<updated>{e.published.isoformat()}</updated>\n"
            f"<author><name>{escape(e.story.author)}</name></author>\n"
            f'<category term="{escape(e.story.section)}"/>\n'
            f'<summary type="html">{escape(lead)}</summary>\n'
            f'<content type="html">{escape(body)}</content>\n</entry>\n'
        )
    out.append("</feed>\n")
    return "".join(out).encode()


# --- the farm on disk ---------------------------------------------------------------------------------


@dataclass
class Farm:
    root: Path
    seed: int
    base: datetime
    feeds: list[FeedSpec]
    wires: int

    @property
    def feed_dir(self) -> Path:
        return self.root / FEEDS_DIR

    def path(self, feed: FeedSpec) -> Path:
        return self.feed_dir / feed.filename

    def files(self) -> list[Path]:
        return [self.path(f) for f in self.feeds]

    def urls(self, base_url: str) -> list[str]:
        return [f"{base_url.rstrip('/')}/{FEEDS_DIR}/{f.filename}" for f in self.feeds]

    def items(self) -> int:
        return sum(f.count for f in self.feeds)

    def save(self) -> None:
        manifest = {
            "seed": self.seed, "base": self.base.isoformat(), "wires": self.wires,
            "feeds": [asdict(f) for f in self.feeds],
        }  # fmt: skip
        (self.root / MANIFEST).write_text(json.dumps(manifest))

    def write(self, feed: FeedSpec) -> None:
        path = self.path(feed)
        path.write_bytes(render(self.seed, feed, self.base, self.wires))
        # Validators (nginx's ETag is mtime-size) must change with every version, even within one second.
        stamp = self.base.timestamp() + feed.version * 60
        os.utime(path, (stamp, stamp))


def load(root: Path) -> Farm:
    m = json.loads((root / MANIFEST).read_text())
    return Farm(
        root, m["seed"], datetime.fromisoformat(m["base"]), [FeedSpec(**f) for f in m["feeds"]], m["wires"]
    )


def generate(root: Path, n: int, *, seed: int = 1, base: datetime | None = None) -> Farm:
    """Write ``n`` feeds under ``root/feeds`` and the manifest; returns the farm."""
    rng = random.Random(f"{seed}:farm")
    # A recent, whole-minute base: items must look fresh to the readers (some ignore old items).
    base = base or datetime.fromtimestamp(int(time.time()) // 60 * 60, UTC)
    feeds = []
    for i in range(n):
        roll = rng.random()
        lang = "en" if roll < 0.5 else "sr-latn" if roll < 0.75 else "sr-cyrl"
        count = rng.randint(30, 60)
        # Cyrillic costs two bytes a letter: fewer words for the same file size
        words = int(rng.uniform(40, 300) * (0.6 if lang == "sr-cyrl" else 1.0) * 45 / count)
        kind = "atom" if rng.random() < 0.33 else "rss"
        start = NEWEST - count - rng.randrange(60)  # newest items a few hours old
        feeds.append(FeedSpec(i, kind, lang, start, count, words, rng.random() < 0.6))
    farm = Farm(root, seed, base, feeds, wires=max(2, n // 20))
    farm.feed_dir.mkdir(parents=True, exist_ok=True)
    for f in feeds:
        farm.write(f)
    farm.save()
    return farm


def mutate(farm: Farm, percent: float, *, cycle: int = 1) -> list[FeedSpec]:
    """Change exactly round(N * percent / 100) feeds: 1-8 new items on top, as many old ones dropped."""
    rng = random.Random(f"{farm.seed}:mutate:{cycle}")
    k = round(len(farm.feeds) * percent / 100)
    changed = rng.sample(farm.feeds, k)
    for f in changed:
        f.start += rng.randint(1, 8)
        f.version += 1
        farm.write(f)
    farm.save()
    return changed


def sizes(farm: Farm) -> tuple[int, int, int]:
    """(total bytes, smallest file, largest file)."""
    s = [p.stat().st_size for p in farm.files()]
    return sum(s), min(s), max(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutate", type=float, help="change this percentage of an existing farm's feeds")
    args = ap.parse_args()
    started = time.perf_counter()
    if args.mutate is not None:
        farm = load(args.root)
        changed = mutate(farm, args.mutate, cycle=1 + max(f.version for f in farm.feeds))
        print(f"mutated {len(changed)} of {len(farm.feeds)} feeds in {time.perf_counter() - started:.1f}s")
        return
    farm = generate(args.root, args.feeds, seed=args.seed)
    total, small, large = sizes(farm)
    print(
        f"{len(farm.feeds)} feeds, {farm.items()} items, {total / 1e6:.1f} MB "
        f"(files {small / 1e3:.0f}-{large / 1e3:.0f} KB) in {time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
