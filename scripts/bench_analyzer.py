"""Benchmark the gptoss analyzer in-process: load time, single-song latency, songs per minute.

Loads the checkpoint exactly as the service does (`GPTOSSChristianAnalyzer.from_config`), times
`analyze_song` one song at a time, then `analyze_songs_batch` over the same songs in batches of
GPTOSS_BATCH_SIZE. Lyrics are read at run time from the data file; nothing is stored or printed.

    .venv/bin/python scripts/bench_analyzer.py --data ../shared/data/songs.jsonl \\
        [--checkpoint selah/checkpoints/default] [--songs 100] [--batch-size 16] [--threads 0]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def read_songs(path: Path, limit: int) -> list[dict]:
    """The first `limit` songs of a JSONL file as `{title, artist, lyrics}`."""
    songs = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                songs.append({k: record.get(k) or "" for k in ("title", "artist", "lyrics")})
            if len(songs) == limit:
                break
    return songs


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL with title/artist/lyrics")
    parser.add_argument("--checkpoint", default="", help="checkpoint folder (default: embedded)")
    parser.add_argument("--songs", type=int, default=100, help="songs to time")
    parser.add_argument("--batch-size", type=int, default=16, help="GPTOSS_BATCH_SIZE")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args(argv)

    import torch

    from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
    from selah.runtime import peak_rss_mib

    if args.threads:
        torch.set_num_threads(args.threads)
    songs = read_songs(args.data, args.songs)
    config = {"GPTOSS_MODEL_PATH": args.checkpoint, "GPTOSS_DEVICE": "cpu",
              "GPTOSS_BATCH_SIZE": args.batch_size}
    started = time.perf_counter()
    analyzer = GPTOSSChristianAnalyzer.from_config(config)
    load_s = time.perf_counter() - started
    analyzer.analyze_song(**songs[0])  # warm-up

    latencies = []
    for song in songs:
        began = time.perf_counter()
        result = analyzer.analyze_song(**song)
        latencies.append(time.perf_counter() - began)
        assert result.error_message is None, result.error_message
    began = time.perf_counter()
    results = analyzer.analyze_songs_batch(songs)
    batch_s = time.perf_counter() - began
    assert all(r.error_message is None for r in results)
    ordered = sorted(latencies)
    print(json.dumps({
        "model_version": analyzer.model_version, "checkpoint": str(analyzer.path),
        "songs": len(songs), "threads": torch.get_num_threads(), "batch_size": args.batch_size,
        "load_seconds": round(load_s, 2),
        "single_song_ms": {"median": round(statistics.median(latencies) * 1000, 1),
                           "p95": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
                           "max": round(ordered[-1] * 1000, 1)},
        "single_song_songs_per_minute": round(60 * len(songs) / sum(latencies), 1),
        "batch_songs_per_minute": round(60 * len(songs) / batch_s, 1),
        "peak_rss_mib": peak_rss_mib(),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
