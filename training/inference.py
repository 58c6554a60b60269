"""Run a student (float or INT8) over songs, batch-invariantly, on any device.

Used by `training.export` (float against INT8 on the validation songs) and by the service's
`GPTOSSChristianAnalyzer`, so both see the same numbers. Decoding is `training.predict`'s (the one
convention: verdict argmax, score = sigmoid x 100 clamped into the verdict's band, every head's
probabilities under `heads`).

Unlike training's `Featurizer`, every window is padded to `max_length` tokens. With fixed window
shapes, per-token activation scales in the INT8 layers and the heads applied one song at a time,
a song is computed the same way whatever else shares the forward pass: it gets the same result,
bit for bit, alone or in any batch. The cost is the padding of each song's last window, which
dynamic padding also pays whenever a batch holds a song of more than one window.
"""

from typing import Sequence

import torch

from training.predict import decode_logits


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
                  device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Logits per head `{name: [n_songs, width]}` (float32, on CPU), `batch_size` songs a pass."""
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
                  device: str | torch.device = "cpu") -> list[dict]:
    """One prediction per song, in order: verdict, verdict_probs, confidence, score (clamped into
    the verdict's band), raw_score and `heads` (every head's probabilities)."""
    if not songs:
        return []
    model.eval()
    return decode_logits(forward_songs(model, featurizer, songs, batch_size, device),
                         model.head_specs)
