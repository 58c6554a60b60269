"""`python -m training.data report|split`: the label distribution and what normalisation did.

The report holds aggregates only (counts, distributions, folds): never lyrics or titles, so it
can go into `docs/data.md`. `split` writes song ids and their split, nothing else.
"""

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from selah import schema
from training.data.readers import DataError, DataReport, Example, assign_splits, read_examples


def _table(rows: list[tuple], header: tuple) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _share(count: int, total: int) -> str:
    return f"{count} ({100.0 * count / total:.1f}%)" if total else str(count)


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _distribution(title: str, counts: Counter, total: int, order=None) -> list[str]:
    keys = list(order) if order else [k for k, _ in counts.most_common()]
    keys += [k for k in counts if k not in keys]
    rows = [(k, _share(counts[k], total)) for k in keys]
    return [f"### {title}", ""] + _table(rows, ("value", "songs")) + [""]


def format_report(examples: list[Example], report: DataReport,
                  signals: list[dict] | None = None) -> str:
    """The Markdown report of a read file: what was read, label distribution, what was folded."""
    n = len(examples)
    stats = report.stats
    out = [f"## Data report: `{Path(report.path).name}`", ""]
    out += _table([
        ("lines", report.lines), ("blank lines", report.blank),
        ("records by format", ", ".join(f"{k} {v}" for k, v in sorted(report.formats.items()))),
        ("skipped (bad lines)", len(report.skipped)),
        ("duplicates dropped", len(report.duplicates)),
        ("songs kept", n),
    ], ("", "count")) + [""]
    for line, reason in report.skipped:
        out.append(f"- skipped line {line}: {reason}")
    for line, kind, first in report.duplicates:
        out.append(f"- duplicate line {line} ({kind}) of line {first}")
    out.append("")

    labels = [e.label for e in examples]
    out += _distribution("Verdict", Counter(lab.verdict for lab in labels), n, schema.VERDICTS)
    band = Counter(schema.verdict_for_score(lab.score) for lab in labels)
    out += _distribution("Score band (verdict implied by the score)", band, n, schema.VERDICTS)
    scores = [lab.score for lab in labels]
    out += [f"Score: mean {statistics.fmean(scores):.1f}, median {statistics.median(scores)}, "
            f"min {min(scores)}, max {max(scores)}; "
            f"verdicts outside their score band (of all records read): "
            f"{stats.counts['verdict.outside_score_band']}", ""]
    for key, order in (("formation_risk", schema.FORMATION_RISKS),
                       ("narrative_voice", schema.NARRATIVE_VOICES),
                       ("lament_filter_applied", (True, False))):
        counts = Counter(getattr(lab, key) for lab in labels)
        out += _distribution(key, counts, n, order)

    theme_counts = Counter(t for lab in labels for t in lab.themes)
    rows = [(t.name, t.category, f"{t.points:+d}", theme_counts[t.name]) for t in schema.THEMES]
    out += ["### Themes (catalogue)", ""] + _table(rows, ("theme", "category", "points", "songs"))
    out += [""]
    concern_counts = Counter(c for lab in labels for c, _ in lab.concerns)
    severity_counts = Counter(s for lab in labels for _, s in lab.concerns)
    out += _distribution("Concerns", concern_counts, n, schema.CONCERN_CATEGORIES)
    out += _distribution("Concern severity (flags)", severity_counts,
                         sum(severity_counts.values()), schema.SEVERITIES)
    refs = [r for lab in labels for r in lab.scripture_references]
    out += [f"Scripture references kept: {len(refs)} ({len(set(refs))} distinct)", ""]
    lengths = [len(e.lyrics) for e in examples]
    out += [f"Lyrics characters: median {statistics.median(lengths)}, "
            f"95th percentile {_percentile(lengths, 0.95)}, max {max(lengths)}", ""]

    out += ["### What normalisation did",
            "", "Counted over every record read, before de-duplication.", ""]
    out += _table(sorted(stats.counts.items()), ("event", "count")) + [""]
    for kind in ("theme", "concern"):
        mapped = {(raw, canon): c for (k, raw, canon), c in stats.folds.items() if k == kind}
        raw_names = {raw for raw, _ in mapped}
        folds = sorted(((raw, canon, c) for (raw, canon), c in mapped.items()
                        if canon and canon != raw), key=lambda r: (r[1], r[0]))
        dropped_names = {raw for (raw, canon) in mapped if canon is None}
        out += [f"#### {kind.capitalize()} names: {len(raw_names)} distinct raw, "
                f"{len(raw_names) - len(folds) - len(dropped_names)} already catalogue names, "
                f"{len(folds)} folded, {len(dropped_names)} dropped", ""]
        out += _table(folds, ("raw", "catalogue", "uses")) + [""]
    dropped = sorted(((k, raw, c) for (k, raw, canon), c in stats.folds.items() if canon is None))
    out += [f"#### Dropped values ({sum(c for *_, c in dropped)})", ""]
    out += (_table(dropped, ("field", "raw value", "uses")) if dropped else ["none"]) + [""]

    if signals is not None:
        out += ["### Teacher signals for the fields the labels lack", ""]
        for key in ("sentiment", "emotion", "safety"):
            counts = Counter(s[key].label for s in signals)
            sources = ", ".join(sorted({s[key].source for s in signals}))
            out += _distribution(f"{key} (source: {sources})", counts, n)
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    from training.data import readers as data

    parser = argparse.ArgumentParser(prog="python -m training.data", description=data.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="print the label distribution and normalisation")
    split = commands.add_parser("split", help="write deterministic k-fold and hold-out splits")
    for sub in (report, split):
        sub.add_argument("file", help="JSONL file in the training, evaluation or chat format")
        sub.add_argument("--format", default="auto", help="auto|training|evaluation|chat")
        sub.add_argument("--skip-bad", action="store_true", help="skip and count bad lines")
    report.add_argument("--signals", action="store_true",
                        help="also tag sentiment, emotion and safety with the offline tools")
    split.add_argument("--out", required=True, help="folder for splits.json")
    split.add_argument("--k", type=int, default=5, help="number of folds (>= 2)")
    split.add_argument("--holdout", type=float, default=0.15, help="hold-out share, in [0, 1)")
    split.add_argument("--seed", type=int, default=0, help="seed of the song order")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `report` or `split`; bad input exits 2 with the error naming the line."""
    args = _parser().parse_args(argv)
    try:
        examples, report = read_examples(args.file, fmt=args.format, skip_bad=args.skip_bad)
    except (DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "report":
        signals = None
        if args.signals:
            from training.labels.signals import SignalTagger

            signals = SignalTagger().tag_many([e.lyrics for e in examples],
                                              [e.label_signals for e in examples])
        print(format_report(examples, report, signals))
        return 0
    splits = assign_splits(examples, args.k, args.holdout, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"source": Path(args.file).name, "k": args.k, "holdout": args.holdout,
               "seed": args.seed, "counts": dict(sorted(Counter(splits.values()).items())),
               "splits": splits}
    (out / "splits.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(payload["counts"]))
    return 0
