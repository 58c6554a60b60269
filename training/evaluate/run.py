"""`python -m training.evaluate`: measure any analyzer backend on labelled songs, one way for all.

    python -m training.evaluate --data FILE --backend NAME [--model PATH] --out DIR [--repeat K]
    python -m training.evaluate --compare A/predictions.jsonl B/predictions.jsonl [--out DIR]

The backend is built by name through the service's own registry (`backend_class`) and called
through the public analyzer interface (`analyze_songs_batch`), exactly as the web app calls it.
Outputs: `summary.json` (metrics), `predictions.jsonl` (gold and predicted fields per song, no
lyrics), `report.html` (tables, confusion matrix, calibration) and the resolved `config.yaml`.
"""

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from selah.deps import require
from training.config import ConfigError, option, parse_config, save_config
from training.data.readers import DataError, Example, read_examples
from training.evaluate.results import compare_predictions, prediction_from_result, summarize

PROG = "python -m training.evaluate"
# Rate-limited backends are retried this many times, waiting at most MAX_RETRY_WAIT_S each.
RATE_LIMIT_RETRIES = 3
MAX_RETRY_WAIT_S = 60.0


class EvaluateError(RuntimeError):
    """Evaluation cannot start or finish; the message says what to do."""


@dataclass
class EvaluateConfig:
    """Settings of one evaluation run (or of `--compare`)."""

    data: str | None = option(None, "labelled JSONL file: training, evaluation or chat format")
    backend: str | None = option(None, "analyzer backend name, as in ANALYZER_BACKEND")
    model: str | None = option(None, "model or checkpoint folder for the backend "
                                     "(passed as GPTOSS_MODEL_PATH and MODEL_PATH)")
    out: str | None = option(None, "output folder for summary.json, predictions.jsonl, report.html")
    repeat: int = option(1, "analyse every song K times and report how often results change",
                         minimum=1, maximum=100)
    batch_size: int = option(1, "songs per analyze_songs_batch call", minimum=1, maximum=1024)
    limit: int | None = option(None, "evaluate only the first N songs", minimum=1)
    format: str = option("auto", "input format", choices=("auto", "training", "evaluation", "chat"))
    skip_bad: bool = option(False, "skip and count malformed lines instead of stopping")
    progress: bool = option(True, "show a progress bar")
    compare: list[str] | None = option(None, "compare two predictions.jsonl files", nargs=2)

    def validate(self) -> None:
        """The settings each mode needs."""
        if self.compare:
            return
        missing = [name for name in ("data", "backend", "out") if not getattr(self, name)]
        if missing:
            raise ConfigError("missing " + ", ".join(f"--{m}" for m in missing) +
                              " (or use --compare A B)")


def build_analyzer(backend: str, model: str | None = None) -> Any:
    """The analyzer registered as `backend`, built from the environment's analyzer settings
    (`selah.settings`, what the service reads too) plus `model`."""
    from selah.analyzers import AnalyzerUnavailable, backend_class
    from selah.settings import analyzer_settings

    try:
        cls = backend_class(backend)
    except ValueError as exc:
        raise EvaluateError(str(exc)) from None
    config = analyzer_settings()
    config["ANALYZER_BACKEND"] = backend
    if model:
        config["GPTOSS_MODEL_PATH"] = config["MODEL_PATH"] = model
    ok, message = cls.preflight_config(config)
    if not ok:
        raise EvaluateError(f"backend {backend!r} cannot load: {message}")
    try:
        return cls.from_config(config)
    except AnalyzerUnavailable as exc:
        raise EvaluateError(f"backend {backend!r} cannot load: {exc}") from None


def _analyze(analyzer: Any, songs: list[dict]) -> list:
    from selah.analyzers import AnalyzerRateLimited

    for attempt in range(RATE_LIMIT_RETRIES + 1):
        try:
            return analyzer.analyze_songs_batch(songs)
        except AnalyzerRateLimited as exc:
            if attempt == RATE_LIMIT_RETRIES:
                raise EvaluateError(f"backend still rate-limited after {attempt} retries") from exc
            time.sleep(min(float(exc.retry_after), MAX_RETRY_WAIT_S))
    raise AssertionError("unreachable")


def run_backend(analyzer: Any, examples: list[Example], batch_size: int = 1,
                progress: Any = None) -> tuple[list, list[float]]:
    """`(results, per-song latency seconds)` for the examples, in order, through the interface."""
    results, latencies = [], []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        began = time.perf_counter()
        out = _analyze(analyzer, [e.song() for e in batch])
        elapsed = time.perf_counter() - began
        if len(out) != len(batch):
            raise EvaluateError(f"backend returned {len(out)} results for {len(batch)} songs")
        results.extend(out)
        latencies.extend([elapsed / len(batch)] * len(batch))
        if progress is not None:
            progress.update(len(batch))
    return results, latencies


def evaluate(records: list[Example], analyzer: Any, out_dir: str | Path, repeat: int = 1,
             batch_size: int = 1, progress: bool = False, meta: dict | None = None) -> dict:
    """Run `analyzer` on `records` (`repeat` times), write the three outputs, return the summary."""
    if not records:
        raise EvaluateError("no records to evaluate")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        tqdm = require("tqdm", "the progress bar")
        bar = tqdm.tqdm(total=len(records) * repeat, unit="song", file=sys.stderr)
    runs, latencies = [], []
    began = time.perf_counter()
    try:
        for _ in range(repeat):
            results, lat = run_backend(analyzer, records, batch_size, bar)
            runs.append([prediction_from_result(r) for r in results])
            latencies.extend(lat)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - began
    meta = dict(meta or {})
    meta.setdefault("backend", getattr(analyzer, "backend", type(analyzer).__name__))
    meta.setdefault("model_version", getattr(analyzer, "model_version", "unknown"))
    summary = summarize(records, runs, latencies, wall, meta)
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for index, example in enumerate(records):
            row = {
                "song_id": example.song_id, "title": example.title, "artist": example.artist,
                "line": example.line,
                "gold": {"verdict": example.label.verdict, "score": example.label.score,
                         "themes": list(example.label.themes)},
                "pred": runs[0][index], "latency_s": latencies[index],
            }
            if repeat > 1:
                row["repeats"] = [{"verdict": run[index]["verdict"], "score": run[index]["score"]}
                                  for run in runs]
            handle.write(json.dumps(row) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from training.evaluate.report import write_report

    points = [(e.label.score, p["score"]) for e, p in zip(records, runs[0])]
    write_report(summary, points, out / "report.html")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings, then evaluate or compare; bad input or backend exits 2 with the reason."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config = parse_config(EvaluateConfig, argv, prog=PROG, description=__doc__)
    try:
        if config.compare:
            result = compare_predictions(*config.compare)
            if config.out:
                Path(config.out).mkdir(parents=True, exist_ok=True)
                (Path(config.out) / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps(result, indent=2))
            return 0
        # Data first: a malformed file should fail before any weights load.
        records, data_report = read_examples(config.data, fmt=config.format,
                                             skip_bad=config.skip_bad)
        records = records[:config.limit] if config.limit else records
        analyzer = build_analyzer(config.backend, config.model)
        meta = {"data": Path(config.data).name, "skipped_lines": len(data_report.skipped),
                "duplicates_dropped": len(data_report.duplicates)}
        save_config(config, Path(config.out) / "config.yaml", argv, PROG)
        summary = evaluate(records, analyzer, config.out, config.repeat, config.batch_size,
                           config.progress, meta)
    except (DataError, EvaluateError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verdict = summary["verdict"]
    print(f"n={summary['n']} accuracy={verdict['accuracy']:.3f} "
          f"macro_f1={verdict['macro_f1']:.3f} mae={summary['score']['mae']:.2f} "
          f"-> {config.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
