"""One story, one alert: the same wire story in four outlets' feeds, polled twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from tests.clihelp import cli, json_lines
from tests.feedmaker import Entry, atom, rss
from tests.feedserver import FeedServer

BODY = (
    "Serbia has taken delivery of the Chinese FK-3 air defence system, the defence ministry said on Tuesday, "
    "making Belgrade the first European operator of the HQ-22 export variant. President Aleksandar Vucic "
    "attended the handover ceremony at Batajnica air base near the capital, where the batteries were displayed "
    "alongside CH-92A combat drones bought from China in 2020. Critics in the European Union have warned that "
    "the purchases deepen Serbia's military ties with Beijing while it seeks EU membership."
)


def test_syndicated_story_gives_one_hit_and_one_alert(feed_server: FeedServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    copies = {
        "/wire": rss([Entry("wire-1", "Serbia takes delivery of Chinese FK-3 air defence system",
                            "https://wire.example/world/serbia-fk3", BODY, now)]),
        "/daily": rss([Entry("daily-77", "Serbia takes delivery of Chinese FK-3 air defence system - Daily",
                             "https://www.wire.example/world/serbia-fk3/?utm_source=rss&utm_medium=feed",
                             "BELGRADE (Reuters) - " + BODY, now)]),
        "/amp": atom([Entry("urn:amp:1", "Serbia receives Chinese FK-3 air-defence system",
                            "https://amp.wire.example/world/serbia-fk3/amp/", BODY[:-60], now)]),
        "/portal": rss([Entry("portal-9", "Serbia takes delivery of Chinese FK-3 air defence system | Portal",
                              "https://portal.example/news/12345", BODY + " Read more on Portal.", now)]),
        "/other": rss([Entry("other-1", "Serbian army shows Chinese drones at parade",
                             "https://other.example/parade",
                             "Serbia displayed CH-92A drones and FK-3 launchers at a military parade in Nis on "
                             "Saturday, with Chinese diplomats among the guests.", now)]),
    }  # fmt: skip
    for path, body in copies.items():
        feed_server.serve(path, body, "application/atom+xml" if path == "/amp" else "application/rss+xml")
    feeds = "".join(f'[[feeds]]\nurl = "{feed_server.url(p)}"\nname = "{p[1:]}"\n' for p in copies)
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n{feeds}'
        f'[channels.log]\ntype = "console"\nstdout = false\nfile = "{tmp_path / "d.log"}"\n'
        "[[topics]]\nname = \"arms\"\nquery = '(Serbia OR Srbija) AND (FK-3 OR HQ-22 OR drone*)'\n"
        'channels = ["log"]\n',
        encoding="utf-8",
    )
    cli(cfg, "poll")
    cli(cfg, "digest")

    def main_hit() -> dict[str, object]:
        hits = json_lines(cfg, "hits")
        assert len(hits) == 2, hits  # the syndicated story and the parade story: never merged
        return next(h for h in hits if h["feed"] != "other")

    first = main_hit()
    assert len(first["also_seen"]) == 3  # type: ignore[arg-type]
    reasons = {c["reason"] for c in first["also_seen"]}  # type: ignore[attr-defined]
    assert "same-url" in reasons and "similar" in reasons  # www/utm copy by URL, reworded ones by text
    for c in first["also_seen"]:  # type: ignore[attr-defined]
        if c["reason"] == "similar":
            assert 0 < c["score"] <= 1

    # a later cycle: every outlet serves its copy again, next to something new, so each body is re-parsed
    for path, body in copies.items():
        feed_server.serve(path, body.replace("</channel>", "<item><title>Weather</title><guid>w</guid></item>"
                                             "</channel>"), validators=False)  # fmt: skip
    cli(cfg, "poll")
    again = main_hit()
    assert again["story"] == first["story"] and len(again["also_seen"]) == 3  # type: ignore[arg-type]

    # one outlet re-publishes under a new GUID with a tracking parameter: attached, never a new hit
    feed_server.serve("/portal", rss([Entry("portal-9-v2", "Serbia takes delivery of Chinese FK-3 air defence "
                                            "system | Portal", "https://portal.example/news/12345?ref=home",
                                            BODY + " Read more on Portal.", now)]))  # fmt: skip
    cli(cfg, "poll")
    cli(cfg, "digest")
    last = main_hit()
    assert last["story"] == first["story"] and len(last["also_seen"]) == 4  # type: ignore[arg-type]
    deliveries = json_lines(cfg, "deliveries")
    assert sorted(d["status"] for d in deliveries) == ["sent", "sent"]  # one alert per story
    log = (tmp_path / "d.log").read_text(encoding="utf-8")
    assert log.count("Watcher digest:") == 1  # the second digest run had nothing pending
    assert log.count("Serbian army shows Chinese drones") == 1
    # which outlet's copy heads the story depends on which feed finished first in the concurrent poll
    assert len(re.findall(r"^\d+\. ", log, flags=re.MULTILINE)) == 2
    (also,) = re.findall(r"also at: (.*)", log)
    assert len(also.split(", ")) == 3
