"""Paths of the training tests' written fixtures (short originals: no shared-data lyrics)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEMPLATES = FIXTURES / "templates"
SONGS = FIXTURES / "songs_training.jsonl"
QWEN3_TEMPLATE = TEMPLATES / "qwen3.jinja"
TINY_YAML = Path(__file__).resolve().parents[2] / "training" / "configs" / "student_tiny.yaml"
