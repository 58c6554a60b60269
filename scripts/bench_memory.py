"""Does a serving process's memory level off? Resident memory over 2,000 varied songs.

Loads the gptoss analyzer as the service does and analyses `--songs` songs made from the data
set's lyrics (1 to 11 songs joined, cut at 20,000 characters, so lengths vary from a verse to
the service's limit), half one at a time (`analyze_song`), half in batches of 2-20
(`analyze_songs_batch`), in a fixed random order (seed 0). Prints the resident set size (VmRSS)
after the model loaded and every 100 songs, and the growth from song 200 to the last song
against the bound (150 MB). Lyrics are read at run time from the data file; nothing is stored.

    .venv/bin/python scripts/bench_memory.py --data ../shared/data/songs.jsonl [--songs 2000]
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOUND_MB = 150
MAX_CHARS = 20_000


def rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    """Print the RSS trace as JSON; exit 1 when the growth passes the bound."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL with lyrics")
    parser.add_argument("--songs", type=int, default=2000, help="songs to analyse")
    parser.add_argument("--checkpoint", default="", help="checkpoint folder (default: embedded)")
    parser.add_argument("--runtime", default="auto", help="GPTOSS_RUNTIME")
    args = parser.parse_args(argv)

    from selah.analyzers.gptoss import GPTOSSChristianAnalyzer

    lyrics = [json.loads(line).get("lyrics") or "" for line in
              args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(0)

    def song(number: int) -> dict:
        parts = [rng.choice(lyrics) for _ in range(rng.choice((1, 1, 1, 2, 3, 5, 8, 11)))]
        return {"title": f"Song {number}", "artist": "Bench",
                "lyrics": "\n\n".join(parts)[:MAX_CHARS]}

    analyzer = GPTOSSChristianAnalyzer.from_config(
        {"GPTOSS_MODEL_PATH": args.checkpoint, "GPTOSS_DEVICE": "cpu",
         "GPTOSS_RUNTIME": args.runtime})
    trace = [{"songs": 0, "rss_mb": round(rss_mb(), 1), "seconds": 0.0}]
    started, done, chars = time.perf_counter(), 0, 0
    while done < args.songs:
        before = done
        if rng.random() < 0.5:
            one = song(done)
            analyzer.analyze_song(**one)
            done, chars = done + 1, chars + len(one["lyrics"])
        else:
            batch = [song(done + i) for i in range(min(rng.randint(2, 20), args.songs - done))]
            analyzer.analyze_songs_batch(batch)
            done, chars = done + len(batch), chars + sum(len(s["lyrics"]) for s in batch)
        if done // 100 != before // 100 or done == args.songs:
            trace.append({"songs": done, "rss_mb": round(rss_mb(), 1),
                          "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(trace[-1]), file=sys.stderr, flush=True)
    # The last sample holds whatever the last call freed since the trim before it (its working
    # set, up to one pass of 8,192 tokens); after a trim now, what stays for good.
    trims = analyzer.heap.trims
    analyzer.heap.trim()
    settled = round(rss_mb(), 1)
    at_200 = next(point for point in trace if point["songs"] >= 200)
    growth = trace[-1]["rss_mb"] - at_200["rss_mb"]
    print(json.dumps({"model_version": analyzer.model_version, "runtime": analyzer.runtime.name,
                      "songs": done, "mean_chars": round(chars / done),
                      "rss_after_load_mb": trace[0]["rss_mb"], "rss_at_200_mb": at_200["rss_mb"],
                      "rss_at_end_mb": trace[-1]["rss_mb"], "rss_at_end_trimmed_mb": settled,
                      "largest_rss_mb": max(point["rss_mb"] for point in trace),
                      "growth_after_200_mb": round(growth, 1), "bound_mb": BOUND_MB,
                      "heap_trims": trims, "trace": trace}, indent=2))
    return 0 if growth <= BOUND_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
