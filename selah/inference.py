"""The one inference path: songs -> windows -> student forward -> per-song predictions.

Used by training (validation during distillation, the pipeline's hold-out figures, the export's
float-against-INT8 comparison) and by the service's `GPTOSSChristianAnalyzer`, so every stage sees
the same numbers. The decoding convention:

- verdict: argmax of the verdict head's softmax (`verdict_probs`, `confidence` = its top prob);
- score: the regression head's sigmoid x 100 is `raw_score`; `score` is `raw_score` clamped into
  the predicted verdict's band (`schema.score_band`: 85-100, 60-84, 40-59, 0-39), so score and
  verdict never disagree. Score MAE is measured on the clamped `score`;
- a checkpoint that carries a calibration (`decoding`: `verdict_temperature`, `score_sigma`)
  tempers the verdict head and decodes verdict and score jointly instead (`joint_decode`), or,
  with `score_mode: conditional`, keeps the argmax verdict and gives the score as the mean of the
  score head's Gaussian inside that verdict's band;
- every other head's probabilities under `heads`: categorical -> softmax `{label: p}`,
  multilabel (themes, concerns) -> per-name sigmoid `{name: p}`, `concern_severity` -> the
  [groups, severities] view of its logits (group g = `schema.CONCERN_CATEGORIES[g]`), softmax
  per concern `{concern: {severity: p}}`.

Windows are bucketed by their own length (`window_buckets`: 64, 128, then `max_length` tokens):
each is padded to the smallest bucket that holds it, and each bucket runs as its own forward pass.
A window's bucket depends on nothing but the window, and with per-token activation scales in the
INT8 layers, per-window pooling sums added up in window order and the heads applied one song at a
time, a song is computed the same way whatever else shares the pass: it gets the same result, bit
for bit, alone or in any batch. Songs are taken in order of length, so a pass holds songs of like
length; results come back in the order given.
"""

import math
from typing import Sequence

import torch

from selah import evidence as line_evidence
from selah import schema

GROUP_NAMES = {"concern_severity": schema.CONCERN_CATEGORIES}
# Padded window lengths below the checkpoint's `max_length` (`window_buckets`).
BUCKETS = (64, 128)
# Tokens (padded windows x their length) of one forward pass at most: a bucket with more is run
# in pieces, which bounds the activations a pass holds whatever the songs' length.
# 8,192 rather than more: on AMX bf16 a window costs about a third more in passes of 16,384.
MAX_PASS_TOKENS = 8192


def _probs(values: torch.Tensor, labels: Sequence[str]) -> dict:
    return {label: float(p) for label, p in zip(labels, values)}


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def band_interval(verdict: str) -> tuple[float, float]:
    """A verdict's band as a real interval: integer scores lo..hi are [lo - 0.5, hi + 0.5],
    clipped to [0, 100]."""
    lowest, highest = schema.score_band(verdict)
    return max(0.0, lowest - 0.5), min(100.0, highest + 0.5)


def joint_decode(verdict_probs: dict[str, float], raw: float, sigma: float
                 ) -> tuple[dict[str, float], str, float]:
    """Verdict and score decoded together: the verdict head's p(v) and the score head's raw
    score read as two measurements of one song, S ~ N(raw, sigma^2) the song's score.

    q(v) = p(v) P(S in band(v)) / sum over v; the verdict is argmax q, the score the mean of S
    truncated to that band (Johnson, Kotz and Balakrishnan, "Continuous Univariate Distributions",
    the truncated normal's mean: raw + sigma (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))), which lies
    inside the band instead of on its edge. Returns (q, verdict, score)."""
    joint, inside = {}, {}
    for verdict in schema.VERDICTS:
        mass, inside[verdict] = band_moments(verdict, raw, sigma)
        joint[verdict] = verdict_probs[verdict] * mass
    total = sum(joint.values())
    if total <= 0.0:  # every band beyond float range of the score: the head alone decides
        joint, total = dict(verdict_probs), 1.0
    q = {v: p / total for v, p in joint.items()}
    verdict = max(schema.VERDICTS, key=lambda v: q[v])
    return q, verdict, inside[verdict]


def band_moments(verdict: str, raw: float, sigma: float) -> tuple[float, float]:
    """(P(S in band), E[S | S in band]) for S ~ N(raw, sigma^2) and the verdict's band (the
    truncated normal's mean: raw + sigma (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))), the mean kept
    inside the band's integer scores."""
    lo, hi = band_interval(verdict)
    a, b = (lo - raw) / sigma, (hi - raw) / sigma
    # a band above the raw score: its mass from upper tails, which do not cancel to 0
    mass = _normal_cdf(-a) - _normal_cdf(-b) if a > 0 else _normal_cdf(b) - _normal_cdf(a)
    mean = (raw + sigma * (_normal_pdf(a) - _normal_pdf(b)) / mass
            if mass > 1e-12 else (lo if raw < lo else hi))
    lowest, highest = schema.score_band(verdict)
    return mass, min(max(mean, float(lowest)), float(highest))


def decode_logits(logits: dict[str, torch.Tensor], head_specs,
                  decoding: dict | None = None) -> list[dict]:
    """Per-song predictions (JSON-ready) from a batch of head logits `{head: [n, width]}`.

    `decoding` (a checkpoint's calibration; none: argmax and clamping, as the module says):
    `verdict_temperature` T divides the verdict logits before their softmax; `score_sigma`
    decodes verdict and score together (`joint_decode`), `verdict_probs` and `confidence` then
    being the joint distribution's (`heads["verdict"]` stays the head's own); with
    `"score_mode": "conditional"` the verdict stays the head's argmax and the score is
    E[S | S in that verdict's band] (`band_moments`): inside the band, never pinned to its edge."""
    decoding = decoding or {}
    temperature = float(decoding.get("verdict_temperature") or 1.0)
    sigma = decoding.get("score_sigma")
    conditional = decoding.get("score_mode") == "conditional"
    decoded: dict[str, list] = {}
    for spec in head_specs:
        values = logits[spec.name].detach().float().cpu()
        if spec.name == "verdict" and temperature != 1.0:
            values = values / temperature
        # One song at a time: a vectorised sigmoid over a [n, width] tensor rounds an element
        # differently depending on where it falls in the vector lanes, so a batch-wide call
        # would make a song's probabilities depend on its batch.
        rows = [values[i:i + 1] for i in range(len(values))]
        if spec.kind == "categorical":
            decoded[spec.name] = [_probs(row.softmax(-1)[0], spec.labels) for row in rows]
        elif spec.kind == "multilabel":
            decoded[spec.name] = [_probs(row.sigmoid()[0], spec.labels) for row in rows]
        elif spec.kind == "grouped":
            names = GROUP_NAMES.get(spec.name) or [str(g) for g in range(spec.groups)]
            decoded[spec.name] = [
                {name: _probs(group, spec.labels) for name, group in
                 zip(names, row.view(spec.groups, len(spec.labels)).softmax(-1))}
                for row in rows]
        else:
            decoded[spec.name] = [{"score": float(row[0, 0].sigmoid()) * 100.0} for row in rows]
    predictions = []
    for i in range(len(decoded["verdict"])):
        heads = {name: rows[i] for name, rows in decoded.items()}
        verdict_probs = heads["verdict"]
        raw = heads["score"]["score"]
        if sigma and not conditional:
            verdict_probs, verdict, score = joint_decode(verdict_probs, raw, float(sigma))
        else:
            verdict = max(schema.VERDICTS, key=lambda v: verdict_probs[v])
            lowest, highest = schema.score_band(verdict)
            score = (band_moments(verdict, raw, float(sigma))[1] if sigma
                     else min(max(raw, float(lowest)), float(highest)))
        predictions.append({
            "verdict": verdict,
            "verdict_probs": verdict_probs,
            "confidence": verdict_probs[verdict],
            "score": score,
            "raw_score": raw,
            "heads": heads,
        })
    return predictions


def featurize(featurizer, songs: Sequence[dict]) -> dict:
    """`{input_ids [W, L], attention_mask [W, L], song_index [W], n_songs}`, L = max_length:
    every window padded to the full length (calibration's fixed shapes)."""
    texts = featurizer.texts(songs)
    encoded = featurizer.tokenizer(
        texts, truncation=True, max_length=featurizer.max_length, stride=featurizer.stride,
        return_overflowing_tokens=True, padding="max_length", return_tensors="pt",
    )
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "song_index": encoded["overflow_to_sample_mapping"].long(),
        "n_songs": len(texts),
    }


def window_buckets(max_length: int) -> tuple[int, ...]:
    """The padded window lengths: 64 and 128 tokens where under `max_length`, then `max_length`."""
    return tuple(length for length in BUCKETS if length < max_length) + (max_length,)


def pass_rows(max_length: int) -> tuple[int, ...]:
    """Every token count a forward pass of `encode_buckets` can have (windows x bucket length):
    the row counts of the backbone's GEMMs."""
    return tuple(sorted({windows * length for length in window_buckets(max_length)
                         for windows in range(1, max(1, MAX_PASS_TOKENS // length) + 1)}))


def featurize_buckets(featurizer, songs: Sequence[dict], lines: bool = False) -> dict:
    """The songs' windows, tokenised in one call and grouped by bucket:
    `{buckets: [(window positions [Wb], input_ids [Wb, Lb], attention_mask [Wb, Lb]), ...],
    song_index [W], n_songs}`, windows numbered in song order; with `lines`, `lines` holds each
    bucket's token lyric lines [Wb, Lb] (`selah.evidence.token_lines`; 0: none)."""
    texts = featurizer.texts(songs)
    tokenizer = featurizer.tokenizer
    encoded = tokenizer(texts, truncation=True, max_length=featurizer.max_length,
                        stride=featurizer.stride, return_overflowing_tokens=True,
                        return_offsets_mapping=lines)
    windows = encoded["input_ids"]
    buckets = window_buckets(featurizer.max_length)
    members: dict[int, list[int]] = {length: [] for length in buckets}
    for position, ids in enumerate(windows):
        members[next(b for b in buckets if len(ids) <= b)].append(position)
    groups, line_groups = [], []
    song_of = encoded["overflow_to_sample_mapping"]
    starts = [line_evidence.line_starts(song) for song in songs] if lines else []
    for length, positions in members.items():
        if not positions:
            continue
        input_ids = torch.full((len(positions), length), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(positions), length), dtype=torch.long)
        token_lines = torch.zeros((len(positions), length), dtype=torch.long) if lines else None
        for row, position in enumerate(positions):
            ids = windows[position]
            input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, :len(ids)] = 1
            if lines:
                token_lines[row, :len(ids)] = torch.tensor(line_evidence.token_lines(
                    encoded["offset_mapping"][position], starts[song_of[position]]))
        groups.append((torch.tensor(positions, dtype=torch.long), input_ids, attention_mask))
        line_groups.append(token_lines)
    batch = {"buckets": groups, "n_windows": len(windows), "n_songs": len(texts),
             "song_index": torch.tensor(song_of, dtype=torch.long)}
    if lines:
        batch["lines"] = line_groups
    return batch


def encode_buckets(model, batch: dict, device, line_peaks: list | None = None) -> torch.Tensor:
    """Song vectors [n_songs, hidden] (float32, on `device`) of `featurize_buckets`' windows:
    each bucket's forward passes (of `MAX_PASS_TOKENS` at most) give per-window pooling terms,
    which are added up per song in window order (`StudentModel.pool`). A batch featurized with
    `lines` fills `line_peaks[window]` with the window's `selah.evidence.line_peaks`."""
    hidden_size = model.backbone.config.hidden_size
    totals = torch.zeros(batch["n_windows"], hidden_size, device=device)
    counts = torch.zeros(batch["n_windows"], 1, device=device)
    lines = batch.get("lines") if line_peaks is not None else None
    for group, (positions, input_ids, attention_mask) in enumerate(batch["buckets"]):
        positions = positions.to(device)
        step = max(1, MAX_PASS_TOKENS // input_ids.size(1))
        for start in range(0, len(positions), step):
            piece = slice(start, start + step)
            window = (input_ids[piece].to(device), attention_mask[piece].to(device))
            terms = model.window_terms(*window, states=True) if lines else \
                model.window_terms(*window)
            totals[positions[piece]], counts[positions[piece]] = terms[0].float(), terms[1].float()
            if lines:
                found = line_evidence.line_peaks(model, terms[2], lines[group][piece])
                for position, window_peaks in zip(positions[piece].tolist(), found):
                    line_peaks[position] = window_peaks
    return model.pool(totals, counts, batch["song_index"].to(device), batch["n_songs"])


def forward_songs(model, featurizer, songs: Sequence[dict], batch_size: int = 16,
                  device: str | torch.device | None = None,
                  evidence: list | None = None) -> dict[str, torch.Tensor]:
    """Logits per head `{name: [n_songs, width]}` (float32, on CPU), `batch_size` songs a pass
    (longest first), on `device` (default: where the model's parameters are). A list given as
    `evidence` is filled with each song's per-line logits (`selah.evidence.song_line_logits`),
    in song order, when the student supports them (`selah.evidence.supported`)."""
    if device is None:
        device = next(model.parameters()).device
    order = sorted(range(len(songs)), key=lambda i: -sum(len(songs[i][k]) for k in
                                                        ("title", "artist", "lyrics")))
    rows: dict[str, list] = {name: [None] * len(songs) for name in model.heads}
    explain = evidence is not None and line_evidence.supported(model, featurizer)
    if evidence is not None:
        evidence[:] = [None] * len(songs)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = featurize_buckets(featurizer, [songs[i] for i in chosen], lines=explain)
            peaks = [None] * batch["n_windows"] if explain else None
            pooled = model.dropout(encode_buckets(model, batch, device, peaks))
            # `StudentModel.forward`, with the heads applied one song at a time: a float GEMM's
            # rounding can depend on how many rows it is given, a single row's never does.
            for name, head in model.heads.items():
                for row, index in enumerate(chosen):
                    rows[name][index] = head(pooled[row:row + 1]).float().cpu()
            if explain:
                windows: list[list] = [[] for _ in chosen]
                for position, song in enumerate(batch["song_index"].tolist()):
                    windows[song].append(peaks[position])
                for row, index in enumerate(chosen):
                    evidence[index] = line_evidence.song_line_logits(model, windows[row])
    return {name: torch.cat(values) for name, values in rows.items()}


def predict_songs(model, featurizer, songs: Sequence[dict], batch_size: int = 16,
                  device: str | torch.device | None = None,
                  decoding: dict | None = None, evidence: bool = False) -> list[dict]:
    """One prediction per `{title, artist, lyrics}` song, in order: verdict, verdict_probs,
    confidence, score (in the verdict's band), raw_score and `heads` (every head's
    probabilities), decoded with `decoding` (`decode_logits`); with `evidence`, `line_logits`
    (`selah.evidence.song_line_logits` as lists: `{lines, head: [[reading per unit] per line]}`,
    None where the student has no per-line reading) and `logits` (the song's own, `{head: [logit
    per unit]}`), for `selah.evidence.evidence_for`. The model runs in eval mode
    and is put back in the mode it was in."""
    if not songs:
        return []
    lines: list | None = [] if evidence else None
    training = model.training
    if training:  # `train()` walks every module: not on the serving path
        model.eval()
    try:
        logits = forward_songs(model, featurizer, songs, batch_size, device, lines)
    finally:
        if training:
            model.train()
    predictions = decode_logits(logits, model.head_specs, decoding)
    if evidence:  # plain lists, like the rest of a prediction: rendering needs no torch
        for i, prediction in enumerate(predictions):
            prediction["line_logits"] = None if lines[i] is None else {
                name: value if name == "lines" else value.tolist()
                for name, value in lines[i].items()}
            prediction["logits"] = {name: logits[name][i].tolist()
                                    for name in line_evidence.EVIDENCE_HEADS if name in logits}
    return predictions
