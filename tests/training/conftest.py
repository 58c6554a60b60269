"""Fixtures of the training tests: written songs, malformed files, the fake backend, tokenizers.

The songs in `fixtures/` are short originals written for these tests (no lyrics from the shared
data). Data tests that read `../shared/data` are marked `data` and skip when it is missing.
"""

import json
import os
from pathlib import Path

import pytest

from tests.fake_analyzer import FakeAnalyzer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEMPLATES = FIXTURES / "templates"
REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """SELAH_DATA_DIR, or `../shared/data` beside the repository."""
    return Path(os.environ.get("SELAH_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture
def fixture_path():
    """`fixture_path("songs_training.jsonl")` -> the path of a file in `fixtures/`."""
    return lambda name: FIXTURES / name


@pytest.fixture(scope="session")
def shared_songs() -> Path:
    """The shared labelled data file; skips (fails in CI) when it is not there."""
    path = shared_data_dir() / "songs.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path} (set SELAH_DATA_DIR)")
    return path


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
def make_tokenizer(tmp_path_factory):
    """`make_tokenizer("qwen3" | "gptoss")`: a small local tokenizer carrying that model's real
    chat template, saved to disk and loaded back through `training.chat.load_tokenizer`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from training.chat import load_tokenizer

    def build(family: str):
        folder = tmp_path_factory.mktemp(f"tokenizer-{family}")
        words = ["[UNK]", "<|im_start|>", "<|im_end|>", "<|start|>", "<|end|>", "<|message|>",
                 "<|channel|>", "<|return|>"]
        core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
        core.pre_tokenizer = pre_tokenizers.Whitespace()
        template = (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
        PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]",
                                chat_template=template).save_pretrained(folder)
        return load_tokenizer(str(folder))

    return build
