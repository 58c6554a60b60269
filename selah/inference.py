"""The one inference path: songs -> windows -> student forward -> per-song predictions.

Used by training (validation during distillation, the pipeline's hold-out figures, the export's
float-against-INT8 comparison) and by the service's `GPTOSSChristianAnalyzer`, so every stage sees
the same numbers. The decoding convention:

- verdict: argmax of the verdict head's softmax (`verdict_probs`, `confidence` = its top prob);
- score: the regression head's sigmoid x 100 is `raw_score`; `score` is `raw_score` clamped into
  the predicted verdict's band (`schema.score_band`: 85-100, 60-84, 40-59, 0-39), so score and
  verdict never disagree. Score MAE is measured on the clamped `score`;
- every other head's probabilities under `heads`: categorical -> softmax `{label: p}`,
  multilabel (themes, concerns) -> per-name sigmoid `{name: p}`, `concern_severity` -> the
  [groups, severities] view of its logits (group g = `schema.CONCERN_CATEGORIES[g]`), softmax
  per concern `{concern: {severity: p}}`.

Unlike training's `Featurizer`, every window is padded to `max_length` tokens. With fixed window
shapes, per-token activation scales in the INT8 layers and the heads applied one song at a time,
a song is computed the same way whatever else shares the forward pass: it gets the same result,
bit for bit, alone or in any batch. The cost is the padding of each song's last window, which
dynamic padding also pays whenever a batch holds a song of more than one window.
"""

from typing import Sequence

import torch

from selah import schema

GROUP_NAMES = {"concern_severity": schema.CONCERN_CATEGORIES}


def _probs(values: torch.Tensor, labels: Sequence[str]) -> dict:
    return {label: float(p) for label, p in zip(labels, values)}


def decode_logits(logits: dict[str, torch.Tensor], head_specs) -> list[dict]:
    """Per-song predictions (JSON-ready) from a batch of head logits `{head: [n, width]}`."""
    decoded: dict[str, list] = {}
    for spec in head_specs:
        values = logits[spec.name].detach().float().cpu()
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
        verdict = max(schema.VERDICTS, key=lambda v: verdict_probs[v])
        raw = heads["score"]["score"]
        lowest, highest = schema.score_band(verdict)
        predictions.append({
            "verdict": verdict,
            "verdict_probs": verdict_probs,
            "confidence": verdict_probs[verdict],
            "score": min(max(raw, float(lowest)), float(highest)),
            "raw_score": raw,
            "heads": heads,
        })
    return predictions


def featurize(featurizer, songs: Sequence[dict]) -> dict:
    """`{input_ids [W, L], attention_mask [W, L], song_index [W], n_songs}`, L = max_length."""
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


def forward_songs(model, featurizer, songs: Sequence[dict], batch_size: int = 16,
                  device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Logits per head `{name: [n_songs, width]}` (float32, on CPU), `batch_size` songs a pass,
    on `device` (default: where the model's parameters are)."""
    if device is None:
        device = next(model.parameters()).device
    chunks: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for start in range(0, len(songs), batch_size):
            batch = featurize(featurizer, songs[start:start + batch_size])
            pooled = model.dropout(model.encode(
                batch["input_ids"].to(device), batch["attention_mask"].to(device),
                batch["song_index"].to(device), batch["n_songs"]))
            # `StudentModel.forward`, with the heads applied one song at a time: a float GEMM's
            # rounding can depend on how many rows it is given, a single row's never does.
            for name, head in model.heads.items():
                rows = torch.cat([head(pooled[i:i + 1]) for i in range(batch["n_songs"])])
                chunks.setdefault(name, []).append(rows.float().cpu())
    return {name: torch.cat(values) for name, values in chunks.items()}


def predict_songs(model, featurizer, songs: Sequence[dict], batch_size: int = 16,
                  device: str | torch.device | None = None) -> list[dict]:
    """One prediction per `{title, artist, lyrics}` song, in order: verdict, verdict_probs,
    confidence, score (clamped into the verdict's band), raw_score and `heads` (every head's
    probabilities). The model runs in eval mode and is put back in the mode it was in."""
    if not songs:
        return []
    was_training = model.training
    model.eval()
    try:
        logits = forward_songs(model, featurizer, songs, batch_size, device)
    finally:
        model.train(was_training)
    return decode_logits(logits, model.head_specs)
