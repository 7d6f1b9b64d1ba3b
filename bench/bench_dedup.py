"""Near-duplicate detection: quality of the method and cost of the SQLite index at scale.

    python bench/bench_dedup.py --quality          # MinHash vs SimHash on the labelled set, fingerprint speed
    python bench/bench_dedup.py --max 100000       # index cost at 10k and 100k stored items
    python bench/bench_dedup.py                    # ... and at 1M (a few minutes, ~1 GB of disk)

The index is filled with synthetic fingerprints (random signatures, 10% copies of earlier items and 10%
drawn from a few hundred "templates" sharing half their signature, like daily reports), bulk-loaded in
band-key order. Each size is then measured in a fresh child process, as after a restart: time to open
and answer the first lookup, per-item cost of best_match + add in transactions of 50 items (one feed's
worth), and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watcher.fingerprint import (  # noqa: E402
    SIGNATURE_SIZE,
    Fingerprint,
    NearDupSettings,
    _signature,
    band_keys,
    fingerprint,
    is_near_duplicate,
)
from watcher.store import neardup  # noqa: E402
from watcher.text import tokens  # noqa: E402

LABELLED = REPO / "tests" / "data" / "dedup_labelled.json"
NOW = datetime(2026, 3, 15, tzinfo=UTC)
SIZES = (10_000, 100_000, 1_000_000)
PROBES = 1000


# ------------------------------------------------------------------------------------------ quality


def _load() -> list[tuple[str, dict[str, object]]]:
    doc = json.loads(LABELLED.read_text(encoding="utf-8"))
    return [(g["id"], it) for g in doc["groups"] for it in g["items"] if not it.get("stretch")]


def _bigrams(text: str) -> set[str]:
    t = tokens(text)
    return {f"{a} {b}" for a, b in itertools.pairwise(t)} or set(t)


def _simhash(shingles: set[str]) -> int:
    weights = np.zeros(64)
    for s in shingles:
        h = int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
        weights += np.array([1 if (h >> i) & 1 else -1 for i in range(64)])
    return sum(1 << i for i in range(64) if weights[i] > 0)


def _separation(pairs: list[tuple[bool, float]], *, higher_is_closer: bool) -> str:
    copies = [v for same, v in pairs if same]
    distinct = [v for same, v in pairs if not same]
    if higher_is_closer:
        return f"copies min {min(copies):6.3f}   distinct max {max(distinct):6.3f}"
    return f"copies max {max(copies):6.0f}   distinct min {min(distinct):6.0f}  (bits)"


def quality() -> None:
    items = _load()
    fps = {str(it["id"]): fingerprint(str(it["title"]), str(it["text"])) for _, it in items}
    long_items = [(g, it) for g, it in items if not fps[str(it["id"])].short]
    body = {str(it["id"]): _bigrams(str(it["text"])) for _, it in items}
    whole = {str(it["id"]): _bigrams(f"{it['title']} {it['text']}") for _, it in items}
    sim_body = {k: _simhash(v) for k, v in body.items()}
    sim_whole = {k: _simhash(v) for k, v in whole.items()}
    exact, minhash, simhash, simhash_all = [], [], [], []
    no_guard = NearDupSettings(number_guard=False)
    for (ga, a), (gb, b) in itertools.combinations(long_items, 2):
        ia, ib = str(a["id"]), str(b["id"])
        exact.append((ga == gb, len(body[ia] & body[ib]) / len(body[ia] | body[ib])))
        minhash.append((ga == gb, is_near_duplicate(fps[ia], fps[ib], no_guard)[1]))
        simhash.append((ga == gb, bin(sim_body[ia] ^ sim_body[ib]).count("1")))
    for (ga, a), (gb, b) in itertools.combinations(items, 2):
        ia, ib = str(a["id"]), str(b["id"])
        simhash_all.append((ga == gb, bin(sim_whole[ia] ^ sim_whole[ib]).count("1")))
    n_copies = sum(same for same, _ in exact)
    print(f"labelled pairs, long bodies: {n_copies} copies, {len(exact) - n_copies} distinct")
    print(f"  exact bigram Jaccard       {_separation(exact, higher_is_closer=True)}")
    print(f"  MinHash-{SIGNATURE_SIZE} estimate       {_separation(minhash, higher_is_closer=True)}")
    print(f"  SimHash-64 Hamming         {_separation(simhash, higher_is_closer=False)}")
    print(f"all {len(items)} items, title + body (incl. short and headline-only):")
    print(f"  SimHash-64 Hamming         {_separation(simhash_all, higher_is_closer=False)}")
    texts = [(str(it["title"]), str(it["text"])) for _, it in items] * 20
    t = time.perf_counter()
    for title, text in texts:
        fingerprint(title, text)
    ours = (time.perf_counter() - t) / len(texts) * 1e6
    print(f"fingerprint(): {ours:.0f} us/item (signature + title set + number contexts)")
    t = time.perf_counter()
    for _, text in texts:
        _signature(tokens(text))
    sig_only = (time.perf_counter() - t) / len(texts) * 1e6
    print(f"  of which the MinHash-{SIGNATURE_SIZE} signature: {sig_only:.0f} us/item")
    try:
        from datasketch import MinHash
    except ImportError:
        return
    t = time.perf_counter()
    for _, text in texts:
        m = MinHash(num_perm=SIGNATURE_SIZE)
        m.update_batch([s.encode() for s in _bigrams(text)])
    theirs = (time.perf_counter() - t) / len(texts) * 1e6
    print(f"datasketch MinHash({SIGNATURE_SIZE}).update_batch, same bigrams: {theirs:.0f} us/item")


# ------------------------------------------------------------------------------------------ scale


def _signature_of(item: int) -> np.ndarray:
    # A plain item's signature is reproducible from its number, so copies and probes need no reads.
    return np.random.default_rng(item).integers(0, 1 << 16, size=SIGNATURE_SIZE, dtype=np.uint16)


def _is_plain(item: int) -> bool:
    return item % 10 >= 2


def _synthetic(rng: np.random.Generator, start: int, count: int) -> list[tuple[int, bytes, list[int]]]:
    templates = np.random.default_rng(0).integers(0, 1 << 16, size=(300, SIGNATURE_SIZE), dtype=np.uint16)
    out = []
    for item in range(start, start + count):
        sig = _signature_of(item)
        if item % 10 == 0 and item > 0:  # a copy of an earlier item: ~90% of slots equal
            base = _signature_of(int(rng.integers(0, item)))
            sig = np.where(rng.random(SIGNATURE_SIZE) < 0.9, base, sig)
        elif item % 10 == 1:  # a template story (daily report): half of a shared signature
            sig = np.where(rng.random(SIGNATURE_SIZE) < 0.5, templates[int(rng.integers(0, 300))], sig)
        title = tuple(sorted(int(x) for x in rng.integers(0, 1 << 32, size=7, dtype=np.uint64)))
        fp = Fingerprint(
            signature=sig.astype("<u2").tobytes(),
            title=title,
            numbers=(),
            body_tokens=80,
            short=False,
            empty=False,
        )
        out.append((item, fp.to_bytes(), band_keys(fp)))
    return out


def _load_range(conn: sqlite3.Connection, start: int, count: int) -> None:
    rng = np.random.default_rng(start)
    chunk = 50_000
    for offset in range(0, count, chunk):
        n = min(chunk, count - offset)
        rows = _synthetic(rng, start + offset, n)
        # spread over the 14-day window, oldest first
        first = int((NOW - timedelta(days=14)).timestamp())
        seen = [first + (start + offset + i) % 1_200_000 for i in range(n)]
        bands = sorted({(neardup.slot(k), item) for item, _, keys in rows for k in keys})
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO neardup_items (item_id, story_id, seen_at, fp) VALUES (?, ?, ?, ?)",
            [(item, item, s, blob) for (item, blob, _), s in zip(rows, seen, strict=True)],
        )
        conn.executemany("INSERT INTO neardup_bands (band, item_id) VALUES (?, ?)", bands)
        conn.execute("COMMIT")


def _peak_rss_mb() -> float:
    # VmHWM belongs to this process image; ru_maxrss would carry over the parent's peak across fork+exec.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _probe(db_path: str, stored: int) -> None:
    """Child process: open the index as after a restart and time lookups + adds."""
    t = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    neardup.create_schema(conn)
    settings = NearDupSettings()
    since = NOW - settings.window
    rng = np.random.default_rng(12345)
    probes = []
    for i in range(PROBES):
        if i % 2 == 0:  # a copy of a stored plain item: must be found
            target = int(rng.integers(0, stored))
            while not _is_plain(target):
                target = int(rng.integers(0, stored))
            sig = _signature_of(target)
            sig = np.where(rng.random(SIGNATURE_SIZE) < 0.85, sig, rng.integers(0, 1 << 16, SIGNATURE_SIZE))
        else:  # a new story
            sig = rng.integers(0, 1 << 16, size=SIGNATURE_SIZE)
        probes.append(
            Fingerprint(
                signature=sig.astype("<u2").tobytes(),
                title=(i, i + 1, i + 2, i + 3, i + 4),
                numbers=(),
                body_tokens=80,
                short=False,
                empty=False,
            )
        )
    neardup.best_match(conn, probes[0], settings, since=since)
    ready = time.perf_counter() - t
    costs = []
    found = 0
    for batch in range(0, PROBES, 50):
        conn.execute("BEGIN IMMEDIATE")
        for j, fp in enumerate(probes[batch : batch + 50]):
            t0 = time.perf_counter()
            match = neardup.best_match(conn, fp, settings, since=since)
            item_id = stored + 10_000_000 + batch + j
            neardup.add(conn, item_id=item_id, story_id=match[1] if match else item_id, fp=fp, seen_at=NOW)
            costs.append(time.perf_counter() - t0)
            found += bool(match) and (batch + j) % 2 == 0
        conn.execute("ROLLBACK")  # keep the file at its nominal size for the next round
    conn.close()
    rss_mb = _peak_rss_mb()
    costs.sort()
    print(json.dumps({
        "ready_ms": ready * 1000,
        "mean_ms": statistics.fmean(costs) * 1000,
        "p50_ms": costs[len(costs) // 2] * 1000,
        "p99_ms": costs[int(len(costs) * 0.99)] * 1000,
        "copies_found": found / (PROBES // 2),
        "rss_mb": rss_mb,
    }))  # fmt: skip


def scale(max_items: int, workdir: Path) -> None:
    db_path = workdir / "bench-neardup.db"
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    neardup.create_schema(conn)
    print(f"{'items':>9} {'load s':>7} {'DB MB':>7} {'ready ms':>9} {'mean ms':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'found':>6} {'RSS MB':>7}")  # fmt: skip
    stored = 0
    for size in [s for s in SIZES if s <= max_items] or [max_items]:
        t = time.perf_counter()
        _load_range(conn, stored, size - stored)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        load = time.perf_counter() - t
        stored = size
        db_mb = db_path.stat().st_size / 1e6
        child = subprocess.run(
            [sys.executable, __file__, "--probe", str(db_path), "--stored", str(stored)],
            capture_output=True, text=True, check=True, timeout=1800,
        )  # fmt: skip
        r = json.loads(child.stdout)
        print(
            f"{size:>9,} {load:>7.1f} {db_mb:>7.0f} {r['ready_ms']:>9.1f} {r['mean_ms']:>8.3f} "
            f"{r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} {r['copies_found']:>6.0%} {r['rss_mb']:>7.0f}"
        )
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quality", action="store_true", help="compare methods on the labelled set")
    ap.add_argument("--max", type=int, default=1_000_000, help="largest index size to build (default 1M)")
    ap.add_argument("--dir", type=Path, default=None, help="where to put the bench database (default: tmp)")
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    ap.add_argument("--stored", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        _probe(args.probe, args.stored)
    elif args.quality:
        quality()
    elif args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        scale(args.max, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-dedup-") as d:
            scale(args.max, Path(d))


if __name__ == "__main__":
    main()
