"""selah.floors: a bf16 GEMM's row floor is calibrated once, then read back from memory or disk."""

import json

import pytest
import torch
from torch import nn

from selah import floors
from selah.int8 import DequantizedLinear, Int8Linear
from tests.selah.cpu import needs_onednn_bf16

COUNTS = tuple(range(64, 1025, 64))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A floor file of the test's own, and no floors in memory."""
    path = tmp_path / "floors.json"
    monkeypatch.setenv("SELAH_FLOOR_CACHE", str(path))
    monkeypatch.setattr(floors, "_FLOORS", {})
    return path


def _layer(in_features: int = 1536, out_features: int = 384) -> DequantizedLinear:
    torch.manual_seed(0)
    return DequantizedLinear(Int8Linear.from_float(nn.Linear(in_features, out_features)),
                             torch.bfloat16)


def _counting(monkeypatch) -> list:
    calls = []
    calibrate = floors.calibrate
    monkeypatch.setattr(floors, "calibrate",
                        lambda layer, rows: calls.append(layer) or calibrate(layer, rows))
    return calls


@needs_onednn_bf16
def test_a_floor_is_calibrated_once_then_read_from_memory_and_from_the_file(cache, monkeypatch):
    calls = _counting(monkeypatch)
    layer = _layer()
    floor = floors.bf16_row_floor(layer, COUNTS)
    assert floor in COUNTS and len(calls) == 1
    assert floors.bf16_row_floor(layer, COUNTS) == floor and len(calls) == 1  # memory
    stored = json.loads(cache.read_text())
    assert stored == {floors.floor_key(layer, COUNTS): floor}
    monkeypatch.setattr(floors, "_FLOORS", {})  # a new process: only the file remains
    assert floors.bf16_row_floor(layer, COUNTS) == floor and len(calls) == 1


def test_what_decides_the_kernel_is_in_the_key(cache, monkeypatch):
    layer = _layer()
    key = floors.floor_key(layer, COUNTS)
    assert "gemm=384x1536" in key and f"torch={torch.__version__}" in key
    assert floors.floor_key(layer, COUNTS[:-1]) != key  # other row counts
    assert floors.floor_key(_layer(384, 1536), COUNTS) != key  # another shape
    layer.adds_residual = True
    assert floors.floor_key(layer, COUNTS) != key  # another post-op
    layer.adds_residual = False
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    assert "threads=7" in floors.floor_key(layer, COUNTS)


@needs_onednn_bf16
def test_a_damaged_or_foreign_file_is_calibrated_over(cache, monkeypatch):
    calls = _counting(monkeypatch)
    layer = _layer(384, 384)
    cache.write_text("{not json")
    floor = floors.bf16_row_floor(layer, COUNTS)
    assert len(calls) == 1 and json.loads(cache.read_text()) == {
        floors.floor_key(layer, COUNTS): floor}
    # A stored floor that is not one of the row counts asked for is not trusted.
    cache.write_text(json.dumps({floors.floor_key(layer, COUNTS): 100}))
    monkeypatch.setattr(floors, "_FLOORS", {})
    assert floors.bf16_row_floor(layer, COUNTS) == floor and len(calls) == 2


@needs_onednn_bf16
def test_an_empty_setting_keeps_the_floors_in_memory_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SELAH_FLOOR_CACHE", "")
    monkeypatch.setattr(floors, "_FLOORS", {})
    monkeypatch.chdir(tmp_path)
    assert floors.cache_file() is None
    floors.bf16_row_floor(_layer(384, 384), COUNTS)
    assert list(tmp_path.iterdir()) == []


def test_without_the_setting_the_file_is_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("SELAH_FLOOR_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert floors.cache_file() == tmp_path / ".cache" / "selah" / "bf16-row-floors.json"
