"""Fixtures of the training tests: written songs, malformed files, the fake backend, and the
tiny random models the stages train (BERT student backbone, Qwen3 teacher, gpt-oss student).

The songs in `fixtures/` are short originals written for these tests (no lyrics from the shared
data). Data tests that read `../shared/data` are marked `data` and skip when it is missing. The
models are real configs at toy sizes with random weights, saved to folders and loaded like any
other checkpoint: a BERT backbone with the all-MiniLM-L6-v2 tokenizer (`training.tiny`), a Qwen3
teacher with a byte-level BPE trained on the fixture songs, and a gpt-oss backbone and student
(`tests/training/gptoss_models.py`).
"""

import json
from pathlib import Path

import pytest

from tests.checkpoints import export_checkpoint
from tests.fake_analyzer import FakeAnalyzer
from tests.training.gptoss_models import write_tiny_gptoss_student
from tests.training.paths import FIXTURES, SONGS, TINY_YAML
from training.config import check_config
from training.data.readers import read_examples
from training.distill.config import DistillConfig
from training.teacher.config import TeacherConfig
from training.tiny import write_tiny_bert, write_tiny_teacher


@pytest.fixture
def fixture_path():
    """`fixture_path("songs_training.jsonl")` -> the path of a file in `fixtures/`."""
    return lambda name: FIXTURES / name


@pytest.fixture
def fake_analyzer() -> FakeAnalyzer:
    """The deterministic fake backend of the service tests."""
    return FakeAnalyzer()


@pytest.fixture
def huge_song_file(tmp_path) -> Path:
    """A training-format file with one song of about 200,000 characters of lyrics."""
    verse = "I keep on walking through the long grey rain and the road keeps on turning\n"
    song = {"title": "Endless Verse", "artist": "Selah Fixture Choir",
            "lyrics": verse * (200_000 // len(verse) + 1),
            "label": {"score": 60, "verdict": "context_required", "themes_positive":
                      ["Perseverance & Endurance (+5)"], "scripture_references": ["James 1:12"]}}
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps(song) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """The folder of the tiny random BERT backbone (built once per session)."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def signals_cache(tmp_path_factory) -> Path:
    """One sentiment/emotion/safety cache shared by every run of the session."""
    return tmp_path_factory.mktemp("signals") / "signals.jsonl"


@pytest.fixture
def tiny_config(tiny_bert, signals_cache, tmp_path):
    """`tiny_config(**overrides)`: the student_tiny.yaml recipe on the tiny BERT and the fixture
    songs, writing to a fresh folder under tmp_path, checked like the command line would."""
    from training.config import check_config, load_yaml

    def build(**overrides) -> DistillConfig:
        values = load_yaml(TINY_YAML)
        values.update(data=str(SONGS), backbone=str(tiny_bert), out=str(tmp_path / "run"),
                      signals_cache=str(signals_cache), progress=False)
        values.update(overrides)
        config = DistillConfig(**values)
        check_config(config)
        return config

    return build


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


@pytest.fixture(scope="session")
def gptoss_student(tmp_path_factory) -> Path:
    """A float tiny gpt-oss student folder (hidden 256: large enough that INT8 holds over 95%
    of its bytes, as at real size, where scales and biases are a rounding error)."""
    return write_tiny_gptoss_student(tmp_path_factory.mktemp("gptoss-student"))


@pytest.fixture(scope="session")
def gptoss_checkpoint(gptoss_student, tmp_path_factory) -> Path:
    """The INT8 checkpoint `training.quantize.export` writes from `gptoss_student`."""
    out = tmp_path_factory.mktemp("gptoss-checkpoints") / "v1"
    export_checkpoint(gptoss_student, out)
    return out
