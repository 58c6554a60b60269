"""Benchmark the gptoss analyzer in-process, each runtime against a naive float32 reference.

In one run, on the same songs and the same cores:
- the reference: a plain float32 transformers model of the checkpoint's architecture (its int8
  weights dequantized), the songs in batches of 16, each batch's windows padded to the longest,
  mean pooled: what a straightforward implementation costs;
- for each runtime of `--runtimes` (`selah.runtime`; `auto` is what the service picks here): the
  analyzer loaded as the service loads it (`GPTOSSChristianAnalyzer.from_config`), then
  `analyze_songs_batch` over all the songs (GPTOSS_BATCH_SIZE songs a pass), and for the first
  runtime `analyze_song` one song at a time (latency) with every result compared to its batch
  result (identical, or the difference is reported);
- each runtime's verdicts and scores against the `float32` runtime's (the same int8 weights with
  float arithmetic), and with `--repeats N` the first runtime's batch pass repeated, counting
  changed results;
- with `--sweep 16,64,...` the first runtime's batch pass again at each of those batch sizes
  (`GPTOSS_BATCH_SIZE`), results checked against the first pass's.

Rates are songs per minute and the ratio to the reference measured in this run, since the
machine may be shared. Lyrics are read at run time from the data file; nothing is stored.

    .venv/bin/python scripts/bench_analyzer.py --data ../shared/data/songs.jsonl \\
        [--checkpoint DIR] [--songs 0] [--runtimes auto,float32] [--repeats 1] [--threads 0] \\
        [--batch-size 64] [--sweep 16,32,64,128]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Keys of a result that may differ between two runs of the same prediction (timing, clocks).
TIMING_KEYS = ("processing_time", "timestamp")


def read_songs(path: Path, limit: int) -> list[dict]:
    """The first `limit` songs (0: all) of a JSONL file as `{title, artist, lyrics}`."""
    songs = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                songs.append({k: record.get(k) or "" for k in ("title", "artist", "lyrics")})
            if len(songs) == limit:
                break
    return songs


def comparable(result) -> dict:
    """A result's dict without the keys that change from run to run."""
    data = result.to_dict()
    return {k: v for k, v in data.items() if k not in TIMING_KEYS}


def reference_rate(analyzer, songs: list[dict], batch_size: int = 16) -> float:
    """Songs per minute of a plain float32 transformers model (the analyzer's architecture and
    dequantized weights) over `songs`, `batch_size` a batch padded to the longest window."""
    import torch
    from transformers import AutoConfig, AutoModel

    from selah.checkpoint import load_checkpoint, open_checkpoint
    from selah.int8 import Int8Embedding, apply_runtime
    from selah.student import Featurizer

    description = analyzer.manifest["backbone_config"]
    values = dict(description)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    model = AutoModel.from_config(config).eval()
    # The float32 runtime's weights (`selah.int8.DequantizedLinear`) of the INT8 checkpoint as
    # loaded (the analyzer's own model has its runtime's layers), the embedding rows dequantized
    # the same way.
    int8_model = load_checkpoint(open_checkpoint(analyzer.path), "cpu")[0]
    backbone = apply_runtime(int8_model, "float32").backbone
    state = backbone.state_dict()
    for name, module in backbone.named_modules():
        if isinstance(module, Int8Embedding):
            del state[f"{name}.weight_int8"], state[f"{name}.weight_scale"]
            state[f"{name}.weight"] = module.weight_int8.float() * module.weight_scale.unsqueeze(1)
    model.load_state_dict(state, strict=True)
    featurizer = Featurizer(analyzer.featurizer.tokenizer, analyzer.featurizer.max_length,
                            analyzer.featurizer.stride)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(songs), batch_size):
            batch = featurizer(songs[start:start + batch_size])
            hidden = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            sums = torch.zeros(batch["n_songs"], hidden.size(-1))
            sums.index_add_(0, batch["song_index"], (hidden * mask).sum(1))
    return 60 * len(songs) / (time.perf_counter() - started)


def timed_batch(analyzer, songs: list[dict]) -> tuple[list, float]:
    """`(results, songs per minute)` of one `analyze_songs_batch` over `songs`."""
    started = time.perf_counter()
    results = analyzer.analyze_songs_batch(songs)
    rate = 60 * len(songs) / (time.perf_counter() - started)
    errors = [r.error_message for r in results if r.error_message]
    assert not errors, errors[0]
    return results, rate


def single_songs(analyzer, songs: list[dict], batch_results: list) -> dict:
    """Latency of `analyze_song` one song at a time, and how many results differ from the batch."""
    latencies, differ = [], 0
    for song, batched in zip(songs, batch_results):
        began = time.perf_counter()
        result = analyzer.analyze_song(**song)
        latencies.append(time.perf_counter() - began)
        differ += comparable(result) != comparable(batched)
    ordered = sorted(latencies)
    return {"median_ms": round(statistics.median(latencies) * 1000, 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "songs_per_minute": round(60 * len(songs) / sum(latencies), 1),
            "results_differing_from_batch": differ}


def sweep(analyzer, songs: list[dict], results: list, sizes: str) -> dict:
    """Batch songs per minute at each batch size of `sizes` (comma-separated), and how many
    results differ from `results`; the analyzer's batch size is put back."""
    chosen, report = analyzer.batch_size, {}
    try:
        for size in (int(value) for value in sizes.split(",")):
            analyzer.batch_size = size
            again, rate = timed_batch(analyzer, songs)
            report[size] = {"batch_songs_per_minute": round(rate, 1), "results_differing":
                            sum(comparable(a) != comparable(b) for a, b in zip(again, results))}
    finally:
        analyzer.batch_size = chosen
    return report


def agreement(results: list, reference: list) -> dict:
    """Verdicts and scores of `results` against `reference`, song by song."""
    from selah.analyzers.columns import legacy_columns

    verdicts = [(legacy_columns(a)["verdict"], legacy_columns(b)["verdict"])
                for a, b in zip(results, reference)]
    same = sum(a == b for a, b in verdicts)
    changes = [abs(a.get_final_score() - b.get_final_score()) for a, b in zip(results, reference)]
    return {"verdict_agreement": round(same / len(results), 4), "verdicts_changed":
            len(results) - same, "largest_score_change": round(max(changes), 2),
            "mean_score_change": round(statistics.mean(changes), 3)}


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL with title/artist/lyrics")
    parser.add_argument("--checkpoint", default="", help="checkpoint folder (default: embedded)")
    parser.add_argument("--songs", type=int, default=0, help="songs to time (0: all)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="GPTOSS_BATCH_SIZE (0: the analyzer's default)")
    parser.add_argument("--runtimes", default="auto,float32",
                        help="GPTOSS_RUNTIME values, comma-separated; the first is timed alone "
                             "too, float32 is the agreement reference when listed")
    parser.add_argument("--repeats", type=int, default=1,
                        help="batch passes of the first runtime (changed results are counted)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--sweep", default="",
                        help="batch sizes, comma-separated, to time the first runtime at too")
    args = parser.parse_args(argv)

    import torch

    from selah.analyzers.gptoss import DEFAULT_BATCH_SIZE, GPTOSSChristianAnalyzer
    from selah.runtime import peak_rss_mib

    if args.threads:
        torch.set_num_threads(args.threads)
    songs = read_songs(args.data, args.songs)
    args.batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    report = {"songs": len(songs), "threads": torch.get_num_threads(),
              "batch_size": args.batch_size, "runtimes": {}}
    outputs = {}
    for position, runtime in enumerate(args.runtimes.split(",")):
        config = {"GPTOSS_MODEL_PATH": args.checkpoint, "GPTOSS_DEVICE": "cpu",
                  "GPTOSS_BATCH_SIZE": args.batch_size, "GPTOSS_RUNTIME": runtime}
        started = time.perf_counter()
        analyzer = GPTOSSChristianAnalyzer.from_config(config)
        entry = {"runtime": analyzer.runtime.name, "reason": analyzer.runtime.reason,
                 "load_seconds": round(time.perf_counter() - started, 2)}
        analyzer.analyze_songs_batch(songs[:32])  # warm-up
        if position == 0:
            report["model_version"] = analyzer.model_version
            report["reference_songs_per_minute"] = round(reference_rate(analyzer, songs), 1)
        results, rate = timed_batch(analyzer, songs)
        rates, changed = [rate], 0
        for _ in range(args.repeats - 1 if position == 0 else 0):
            again, rate = timed_batch(analyzer, songs)
            rates.append(rate)
            changed += sum(comparable(a) != comparable(b) for a, b in zip(again, results))
        entry["batch_songs_per_minute"] = round(statistics.median(rates), 1)
        entry["ratio_to_reference"] = round(entry["batch_songs_per_minute"]
                                            / report["reference_songs_per_minute"], 2)
        if args.repeats > 1 and position == 0:
            entry["repeats"], entry["results_changed_over_repeats"] = args.repeats, changed
        if position == 0 and args.sweep:
            entry["sweep"] = sweep(analyzer, songs, results, args.sweep)
        if position == 0:
            entry["single_song"] = single_songs(analyzer, songs, results)
            entry["single_song"]["ratio_to_reference"] = round(
                entry["single_song"]["songs_per_minute"] / report["reference_songs_per_minute"],
                2)
        outputs[runtime] = results
        report["runtimes"][runtime] = entry
        del analyzer
    if "float32" in outputs:
        for runtime, results in outputs.items():
            if runtime != "float32":
                report["runtimes"][runtime]["against_float32"] = agreement(
                    results, outputs["float32"])
    report["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
