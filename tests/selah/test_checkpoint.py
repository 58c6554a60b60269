"""selah.checkpoint on the shipped default checkpoint: opened once, verified, loaded as opened."""

import shutil
from pathlib import Path

import pytest

from selah import checkpoint
from selah.analyzers.gptoss import EMBEDDED_CHECKPOINT, GPTOSSChristianAnalyzer
from selah.checkpoint import CheckpointError, load_checkpoint, open_checkpoint

SONG = {"title": "Quiet Harbour", "artist": "Test Choir",
        "lyrics": "You calm the water when the storm is loud\nI rest my anchor in Your name"}


@pytest.fixture
def manifest_reads(monkeypatch):
    """How many times `read_manifest` runs, counted from here on."""
    calls = []
    original = checkpoint.read_manifest

    def counted(folder):
        calls.append(Path(folder))
        return original(folder)

    monkeypatch.setattr(checkpoint, "read_manifest", counted)
    return calls


def test_open_reads_and_checks_the_manifest_without_torch_work():
    opened = open_checkpoint(EMBEDDED_CHECKPOINT)
    assert opened.path == EMBEDDED_CHECKPOINT
    assert opened.manifest["format"] == checkpoint.FORMAT
    assert len(opened.manifest_sha256) == 64


def test_a_service_load_reads_the_manifest_once(manifest_reads):
    config = {"GPTOSS_MODEL_PATH": str(EMBEDDED_CHECKPOINT), "GPTOSS_DEVICE": "cpu"}
    analyzer = GPTOSSChristianAnalyzer.from_config(config)
    assert manifest_reads == [EMBEDDED_CHECKPOINT]
    assert analyzer.analyze_song(**SONG).is_successful()


def test_preflight_resolves_one_spec_that_the_load_uses(manifest_reads):
    spec = GPTOSSChristianAnalyzer.resolve({"GPTOSS_DEVICE": "cpu", "GPTOSS_BATCH_SIZE": 4})
    assert (spec.device, spec.batch_size, spec.source) == ("cpu", 4, "embedded default")
    analyzer = GPTOSSChristianAnalyzer.load(spec)
    assert manifest_reads == [EMBEDDED_CHECKPOINT]
    assert analyzer.model_version == spec.model_version
    assert analyzer.batch_size == 4


def test_a_file_changed_after_opening_is_refused_at_load(tmp_path):
    folder = Path(shutil.copytree(EMBEDDED_CHECKPOINT, tmp_path / "ckpt"))
    opened = open_checkpoint(folder)
    tokenizer = folder / "tokenizer.json"
    data = bytearray(tokenizer.read_bytes())
    data[-2] = ord(" ") if data[-2] != ord(" ") else ord("\n")  # same size, other bytes
    tokenizer.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tokenizer.json: SHA-256 does not match"):
        load_checkpoint(opened)


def test_load_from_a_folder_opens_it_first():
    model, featurizer, manifest, sha = load_checkpoint(EMBEDDED_CHECKPOINT)
    assert sha == open_checkpoint(EMBEDDED_CHECKPOINT).manifest_sha256
    assert featurizer.max_length == manifest["max_length"] and not model.training
