"""Fixtures of the distillation tests: a tiny random BERT backbone and short written songs.

`tests/training/conftest.py` belongs to the data stage; the distillation tests import these
fixtures from here. The backbone is a real `BertConfig` (2 layers, hidden 32) with random weights
and the all-MiniLM-L6-v2 tokenizer, saved to a folder so `build_student` loads it like any other.
The songs are the twelve originals of `fixtures/songs_training.jsonl` (no shared-data lyrics).
"""

from pathlib import Path

import pytest

from training.distill import DistillConfig
from training.tiny import write_tiny_bert

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SONGS = FIXTURES / "songs_training.jsonl"
TINY_YAML = Path(__file__).resolve().parents[2] / "training" / "configs" / "student_tiny.yaml"


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
