"""Fixtures of the teacher tests: a tiny random Qwen3 teacher and a teacher config for it.

The teacher is a real `Qwen3Config` (2 layers, hidden 32) with random weights and a byte-level
BPE tokenizer trained on the twelve written fixture songs (`training.tiny.write_tiny_teacher`),
saved to a folder so `load_causal_lm` loads it like any other checkpoint.
"""

from pathlib import Path

import pytest

from training.config import check_config
from training.data import read_examples
from training.teacher import TeacherConfig
from training.tiny import write_tiny_teacher

SONGS = Path(__file__).resolve().parent / "fixtures" / "songs_training.jsonl"
QWEN3_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "templates" / "qwen3.jinja"


@pytest.fixture(scope="session")
def songs() -> list:
    """The twelve fixture songs as Examples."""
    return read_examples(SONGS)[0]


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, songs) -> Path:
    """The folder of the tiny random Qwen3 teacher (built once per session)."""
    texts = [f"{e.title}\n{e.artist}\n{e.lyrics}" for e in songs]
    return write_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"), texts)


@pytest.fixture
def teacher_config(tiny_teacher, tmp_path):
    """`teacher_config(**overrides)`: a checked TeacherConfig on the tiny teacher, writing to a
    fresh folder; small enough for a few seconds of CPU."""

    def make(**overrides) -> TeacherConfig:
        values = dict(data=str(SONGS), out=str(tmp_path / "teacher"), model=str(tiny_teacher),
                      max_length=448, answer_reserve=96, epochs=1, batch_size=2,
                      grad_accumulation=2, lr=1e-3, galore_rank=4, galore_update_gap=2,
                      precision="fp32", device="cpu", holdout=0.2, save_every=1,
                      progress=False, num_threads=1)
        values.update(overrides)
        config = TeacherConfig(**values)
        check_config(config)
        return config

    return make
