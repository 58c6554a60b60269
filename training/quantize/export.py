"""`python -m training.quantize.export`: a float student to the INT8 checkpoint the service loads.

    python -m training.quantize.export --student runs/embedded/best \\
        --data ../shared/data/songs.jsonl --out selah/checkpoints/default \\
        [--split auto|holdout|foldN|all] [--activations auto]

Steps: load the float student; calibrate GPTQ rounding on a few training songs; quantize a copy
(`training.quantize.calibrate`); run both on the validation songs and compare them (verdict
agreement, largest probability difference, score MAE). With `--activations auto` the int8 GEMM is
tried first and weight-only INT8 (float activations) second; the export refuses, writing nothing,
when the verdict agreement stays under `--min-agreement` (99%), or when INT8 holds less than
`--min-int8-share` of the backbone's bytes (counted per module kind and dtype by
`selah.int8_experts.byte_report`; 95% by default for gpt-oss, whose fused experts a
Linear-only quantizer would leave in bf16). Then it builds the theme ->
scripture table from the labelled training songs; write the folder (weights, tokenizer,
MODEL_CARD.md, manifest.json with every file's SHA-256) beside the target and rename it into place,
so a watching service never sees half a checkpoint.
"""

import copy
import hashlib
import json
import os
import re
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from selah import schema
from selah.files import replace_folder, sha256_file
from training.config import ConfigError, option, parse_config
from training.quantize.card import model_card

PROG = "python -m training.quantize.export"


class ExportError(RuntimeError):
    """The checkpoint cannot be written; the message says why and what to do."""


@dataclass
class ExportConfig:
    """Settings of one export."""

    student: str = option("", "float student folder written by selah.student.save_student")
    data: str = option("", "the labelled JSONL the student was trained on")
    out: str = option("", "checkpoint folder to write (replaced atomically if it exists)")
    split: str = option("auto", "songs to compare float and INT8 on: auto (the student's own "
                        "validation songs, from student.json), holdout, foldN or all")
    k: int = option(5, "folds, when --split foldN", minimum=2)
    holdout: float = option(0.15, "hold-out share of assign_splits", minimum=0.0, maximum=0.99)
    seed: int = option(0, "split seed of assign_splits")
    min_agreement: float = option(0.99, "refuse below this float/INT8 verdict agreement",
                                  minimum=0.0, maximum=1.0)
    activations: str = option("auto", "int8: per-token int8 GEMM on CPU; float: weight-only "
                              "INT8 (float matmul); auto: int8, or float if int8 falls under "
                              "--min-agreement", choices=("auto", "int8", "float"))
    min_int8_share: float | None = option(None, "refuse when INT8 holds less of the backbone's "
                                          "bytes (default: 0.95 for gpt-oss; report only for "
                                          "small encoders, whose float position tables and "
                                          "scales weigh more)", minimum=0.0, maximum=1.0)
    calibration_songs: int = option(16, "training songs whose activations calibrate GPTQ "
                                    "rounding and SmoothQuant (0: round to nearest, no "
                                    "smoothing)", minimum=0)
    smooth_alpha: float = option(0.5, "SmoothQuant migration strength for the int8 GEMM "
                                 "(0: no smoothing)", minimum=0.0, maximum=1.0)
    batch_size: int = option(16, "songs per forward pass", minimum=1)
    scripture_top: int = option(3, "references kept per theme", minimum=1, maximum=10)
    skip_bad: bool = option(False, "skip malformed lines of --data instead of stopping")
    decoding: str = option("", "JSON file of a fitted decoding (verdict_temperature, "
                           "score_sigma: training.distill.crossval's decoding.json) the service "
                           "applies; empty: argmax verdict, score clamped into its band")

    def validate(self) -> None:
        """The three paths are required."""
        missing = [f"--{n}" for n in ("student", "data", "out") if not getattr(self, n)]
        if missing:
            raise ConfigError("missing " + ", ".join(missing))


def select_songs(examples: list, meta: dict, config: ExportConfig) -> tuple[list, list, str]:
    """`(songs to compare float and INT8 on, songs the student trained on, what they are)`.

    `auto` rebuilds the student's own split from the settings in its student.json
    (`training.distill.config.split_examples`); the others use
    `training.data.readers.assign_splits`.
    """
    from training.data.readers import assign_splits

    if config.split == "auto":
        settings = meta.get("config") or {}
        if "split" not in settings:
            raise ExportError("student.json does not record the split it was trained with; pass "
                              "--split holdout, --split foldN or --split all")
        from training.distill.config import split_examples

        defaults = {"holdout": 0.15, "split_seed": 0, "val_fraction": 0.1}
        train, val, note = split_examples(examples, SimpleNamespace(**{**defaults, **settings}))
        return val, train, f"the student's validation songs: {note}"
    if config.split == "all":
        return list(examples), list(examples), "all songs"
    valid = {"holdout", *(f"fold{i}" for i in range(config.k))}
    if config.split not in valid:
        raise ExportError(f"--split {config.split!r}: use auto, holdout, fold0..fold{config.k - 1}"
                          " or all")
    splits = assign_splits(examples, config.k, config.holdout, config.seed)
    chosen = [e for e in examples if splits[e.song_id] == config.split]
    train = [e for e in examples if splits[e.song_id] not in (config.split, "holdout")]
    return chosen, train, (f"{config.split} of assign_splits(k={config.k}, "
                           f"holdout={config.holdout}, seed={config.seed})")


def compare(float_preds: list[dict], int8_preds: list[dict]) -> dict:
    """Agreement of INT8 with float: verdicts, probabilities (verdict and every head), scores."""
    n = len(float_preds)
    if n == 0:
        raise ExportError("no songs to compare the INT8 model on")
    same = sum(a["verdict"] == b["verdict"] for a, b in zip(float_preds, int8_preds))
    verdict_diff = max(abs(a["verdict_probs"][v] - b["verdict_probs"][v])
                       for a, b in zip(float_preds, int8_preds) for v in schema.VERDICTS)
    # Every head's probabilities; the score head (0-100, not a probability) is the MAE below.
    head_diff = max(_max_diff({k: v for k, v in a["heads"].items() if k != "score"}, b["heads"])
                    for a, b in zip(float_preds, int8_preds))
    return {
        "songs": n,
        "verdict_agreement": same / n,
        "max_verdict_probability_diff": verdict_diff,
        "max_probability_diff": head_diff,
        "score_mae": sum(abs(a["score"] - b["score"]) for a, b in zip(float_preds, int8_preds)) / n,
        "raw_score_mae": sum(abs(a["raw_score"] - b["raw_score"])
                             for a, b in zip(float_preds, int8_preds)) / n,
    }


def _max_diff(a, b) -> float:
    if isinstance(a, dict):
        return max((_max_diff(a[k], b[k]) for k in a), default=0.0)
    return abs(float(a) - float(b))


def scripture_table(examples: list, top: int = 3) -> dict[str, list[str]]:
    """`{theme: [canonical reference, ...]}`: each theme's most frequent co-occurring references.

    Counts, over the songs labelled with a theme, the valid references of their labels (canonical
    through `selah.scripture`); ties go to the reference first in canonical order. A reference
    sharing a verse with one already kept for the theme ("Ephesians 4:31" after "Ephesians
    4:31-32") is skipped. Themes never labelled get no entry.
    """
    from selah.scripture import canonical_reference

    counts: dict[str, Counter] = defaultdict(Counter)
    for example in examples:
        references = {ref for ref in (canonical_reference(r) for r in
                                      example.label.scripture_references) if ref}
        for theme in set(example.label.themes):
            counts[theme].update(references)
    table = {}
    for theme in schema.THEME_NAMES:
        kept, verses = [], set()
        for ref, _ in sorted(counts[theme].items(), key=lambda item: (-item[1], item[0])):
            ids = _verse_ids(ref)
            if len(kept) < top and not ids & verses:
                kept.append(ref)
                verses |= ids
        if kept:
            table[theme] = kept
    return table


def _verse_ids(reference: str) -> set[int]:
    from selah.deps import require

    bible = require("pythonbible", "scripture references")
    return {verse for parsed in bible.get_references(reference)
            for verse in bible.convert_reference_to_verse_ids(parsed)}


DECODING_KEYS = {"verdict_temperature": (0.05, 20.0), "score_sigma": (0.5, 50.0)}
SCORE_MODES = ("joint", "conditional")  # selah.inference.decode_logits


def read_decoding(path: str) -> dict:
    """The `{verdict_temperature, score_sigma[, score_mode]}` of a decoding file (other keys:
    provenance, kept under `fitted`); ExportError when it is missing or out of range."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read --decoding {path}: {exc}") from None
    decoding = {}
    for key, (low, high) in DECODING_KEYS.items():
        value = values.get(key) if isinstance(values, dict) else None
        if value is not None:
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ExportError(f"--decoding {path}: {key} must be a number in "
                                  f"[{low}, {high}], got {value!r}")
            decoding[key] = float(value)
    if not decoding:
        raise ExportError(f"--decoding {path} sets neither of {', '.join(DECODING_KEYS)}")
    mode = values.get("score_mode", "joint")
    if mode not in SCORE_MODES:
        raise ExportError(f"--decoding {path}: score_mode must be one of "
                          f"{', '.join(SCORE_MODES)}, got {mode!r}")
    if mode != "joint":
        decoding["score_mode"] = mode
    decoding["fitted"] = {k: v for k, v in values.items()
                          if k not in DECODING_KEYS and k != "score_mode"}
    return decoding


def export(config: ExportConfig) -> dict:
    """Run the export; returns the manifest written. Raises ExportError when refused."""
    from safetensors import SafetensorError

    from selah.checkpoint import CARD, WEIGHTS, write_manifest
    from selah.inference import featurize, predict_songs
    from selah.student import load_student
    from training.data.readers import DataError, read_examples
    from training.quantize.calibrate import calibrate, quantize_student
    from training.quantize.run import save_int8_state, state_bytes

    student = Path(config.student)
    if not (student / "student.json").is_file():
        raise ExportError(f"{student} is not a float student folder (no student.json)")
    model, featurizer, description = load_student(student)
    meta = description.get("meta") or {}
    try:
        examples, _report = read_examples(config.data, skip_bad=config.skip_bad)
    except (DataError, OSError) as exc:
        raise ExportError(f"cannot read --data: {exc}") from None
    data_sha = sha256_file(config.data)
    if config.split == "auto" and meta.get("data_sha256") not in (None, data_sha):
        raise ExportError(f"--data {config.data} is not the file the student was trained on "
                          f"({meta.get('data')}, SHA-256 {meta['data_sha256'][:12]}...); its "
                          "validation songs cannot be rebuilt. Pass that file, or --split")
    chosen, training_songs, chosen_how = select_songs(examples, meta, config)
    songs = [e.song() for e in chosen]
    decoding = read_decoding(config.decoding) if config.decoding else {}

    float_preds = predict_songs(model, featurizer, songs, config.batch_size, decoding=decoding)
    statistics, calibration = None, training_songs[:0]
    if config.calibration_songs:
        calibration = sorted(training_songs, key=lambda e: hashlib.sha256(
            e.song_id.encode()).hexdigest())[:config.calibration_songs]
        batches = [featurize(featurizer, [e.song() for e in calibration[i:i + 4]])
                   for i in range(0, len(calibration), 4)]
        statistics = calibrate(model, batches)
    tried = {}
    modes = ("int8", "float") if config.activations == "auto" else (config.activations,)
    for mode in modes:  # the fast int8 GEMM first, weight-only INT8 if that changes verdicts
        int8_model = copy.deepcopy(model)
        quantization = quantize_student(int8_model, mode, statistics, config.smooth_alpha)
        int8_preds = predict_songs(int8_model, featurizer, songs, config.batch_size,
                                   decoding=decoding)
        agreement = {**compare(float_preds, int8_preds), "split": chosen_how,
                     "threshold": config.min_agreement, "activations": mode}
        tried[mode] = agreement["verdict_agreement"]
        if agreement["verdict_agreement"] >= config.min_agreement:
            break
    else:
        outcome = ", ".join(f"{rate:.2%} with {mode} activations" for mode, rate in tried.items())
        raise ExportError(
            f"refused: INT8 verdicts agree with the float model on {outcome} over "
            f"{agreement['songs']} songs ({chosen_how}), under the required "
            f"{config.min_agreement:.0%} (max probability difference "
            f"{agreement['max_probability_diff']:.3f}). Nothing was written.")
    agreement["tried"] = tried
    quantization["calibration_songs"] = len(calibration)
    byte_check = int8_byte_check(int8_model, description, config.min_int8_share)

    float_file = student / "model.safetensors"
    out = Path(config.out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        int8_bytes = save_int8_state(int8_model, tmp / WEIGHTS)
        featurizer.tokenizer.save_pretrained(str(tmp))
        manifest = {
            "model_id": model_id(meta.get("backbone") or
                                description["backbone_config"].get("_name_or_path") or "student"),
            "schema_version": schema.SCHEMA_VERSION,
            "backbone_config": description["backbone_config"],
            "backbone_source": meta.get("backbone") or
            description["backbone_config"].get("_name_or_path") or "unknown",
            "pooling": description["pooling"],
            "prompt": description.get("prompt", "plain"),
            "max_length": description["max_length"],
            "stride": description["stride"],
            "heads": description["heads"],
            "quantization": quantization,
            "training": meta,
            "student_format": description.get("format"),
            "data": {"file": Path(config.data).name, "sha256": data_sha,
                     "songs": len(examples), "scripture_songs": len(training_songs)},
            "agreement": agreement,
            "sizes": {"float_bytes": float_file.stat().st_size, "int8_bytes": int8_bytes,
                      "float_tensor_bytes": state_bytes(model.state_dict()),
                      "int8_tensor_bytes": state_bytes(int8_model.state_dict()),
                      "ratio": round(int8_bytes / float_file.stat().st_size, 4),
                      "by_kind": byte_check["by_kind"], "int8_share": byte_check["int8_share"],
                      "min_int8_share": byte_check["threshold"]},
            "scripture": scripture_table(training_songs, config.scripture_top),
            "scripture_per_theme": config.scripture_top,
            # The service's decoding of the heads (training records its own as a sentence).
            "decoding": {"theme_threshold": 0.5, "concern_threshold": 0.5, "max_scripture": 3,
                         **(meta["decoding"] if isinstance(meta.get("decoding"), dict) else {}),
                         **decoding},
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / CARD).write_text(model_card(manifest), encoding="utf-8")
        manifest["card"] = CARD
        write_manifest(tmp, manifest)
        replace_folder(tmp, out)
    except (OSError, SafetensorError) as exc:  # a full disk, a read-only folder (safetensors
        # reports its own write errors as SafetensorError): the served checkpoint is untouched
        where = getattr(exc, "filename", None) or tmp
        raise ExportError(
            f"could not write the checkpoint: {getattr(exc, 'strerror', None) or exc} ({where}). "
            f"Nothing was replaced: {out} is as it was, and the partial copy was removed"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads((out / "manifest.json").read_text())


def int8_byte_check(int8_model, description: dict, threshold: float | None) -> dict:
    """The quantized model's bytes per module kind and dtype; ExportError when INT8 holds less
    than `threshold` of the backbone's bytes (None: 0.95 for gpt-oss, no floor otherwise)."""
    from selah.gptoss import is_gptoss
    from selah.int8_experts import byte_report

    if threshold is None:
        threshold = 0.95 if is_gptoss(description["backbone_config"]) else 0.0
    report = byte_report(int8_model.state_dict())
    if report["int8_share"] < threshold:
        kinds = "; ".join(f"{kind}: {dtypes}" for kind, dtypes in report["by_kind"].items())
        raise ExportError(f"refused: INT8 holds {report['int8_share']:.1%} of the backbone's "
                          f"{report['backbone_bytes']:,} bytes, under the required "
                          f"{threshold:.0%} (bytes by module and dtype: {kinds}). Nothing was "
                          "written.")
    return {**report, "threshold": threshold}


def model_id(backbone_source: str) -> str:
    """`selah-<backbone name>-int8`, e.g. selah-all-minilm-l6-v2-int8."""
    parts = [p for p in re.split(r"[/\\:]", backbone_source) if p]
    name = parts[-1] if parts else "student"
    if name == "model" and len(parts) > 1:  # a packaged backbone's folder: .../<package>/model
        name = parts[-2]
    return "selah-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "student") + "-int8"


def main(argv: list[str] | None = None) -> int:
    """`python -m training.quantize.export ...`: prints agreement and sizes, or why it refused."""
    config = parse_config(ExportConfig, argv, PROG, __doc__.splitlines()[0])
    try:
        manifest = export(config)
    except ExportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": config.out, "agreement": manifest["agreement"],
                      "sizes": manifest["sizes"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
