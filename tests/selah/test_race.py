"""selah.race: `auto`'s race between bf16 and int8 runs once per machine, then is read back."""

import json

import pytest
import torch

from selah import race
from tests.selah.cpu import needs_onednn_bf16


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A race file of the test's own, and no races in memory."""
    path = tmp_path / "race.json"
    monkeypatch.setenv("SELAH_RUNTIME_RACE_CACHE", str(path))
    monkeypatch.setattr(race, "_RACES", {})
    return path


def _counting(monkeypatch, result: dict) -> list:
    calls = []
    monkeypatch.setattr(race, "measure", lambda: calls.append(1) or dict(result))
    return calls


RESULT = {"int8_ms": 40.0, "bf16_ms": 20.0, "runtime": "bf16"}


def test_a_race_runs_once_then_is_read_from_memory_and_from_the_file(cache, monkeypatch):
    calls = _counting(monkeypatch, RESULT)
    assert race.raced() == RESULT and len(calls) == 1
    assert race.raced() == RESULT and len(calls) == 1  # memory
    assert json.loads(cache.read_text()) == {race.race_key(): RESULT}
    monkeypatch.setattr(race, "_RACES", {})  # a new process on the same machine
    assert race.raced() == RESULT and len(calls) == 1  # the file


def test_a_race_is_the_machines_and_the_thread_counts(monkeypatch):
    key = race.race_key()
    assert torch.__version__ in key and f"threads={torch.get_num_threads()}" in key
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    assert "threads=7" in race.race_key() and race.race_key() != key


@pytest.mark.parametrize("stored", [
    "{not json",
    json.dumps({"other machine": RESULT}),
    "KEY:" + json.dumps({"runtime": "float16", "int8_ms": 1.0, "bf16_ms": 2.0}),
    "KEY:" + json.dumps({"runtime": "int8", "int8_ms": "fast"}),
])
def test_a_damaged_foreign_or_odd_entry_is_raced_over(cache, monkeypatch, stored):
    if stored.startswith("KEY:"):
        stored = json.dumps({race.race_key(): json.loads(stored[4:])})
    cache.write_text(stored)
    calls = _counting(monkeypatch, RESULT)
    assert race.raced() == RESULT and len(calls) == 1
    assert json.loads(cache.read_text())[race.race_key()] == RESULT


def test_an_empty_setting_keeps_the_race_in_memory_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SELAH_RUNTIME_RACE_CACHE", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(race, "_RACES", {})
    calls = _counting(monkeypatch, RESULT)
    assert race.raced() == RESULT and race.raced() == RESULT and len(calls) == 1
    assert list(tmp_path.iterdir()) == []


@needs_onednn_bf16
def test_the_race_times_both_runtimes_here_and_names_the_faster():
    result = race.measure(repeats=1)
    assert set(result) == {"int8_ms", "bf16_ms", "runtime"}
    assert result["int8_ms"] > 0 and result["bf16_ms"] > 0
    faster = "bf16" if result["bf16_ms"] < result["int8_ms"] else "int8"
    assert result["runtime"] == faster


def test_processes_starting_together_race_once(cache, tmp_path):
    """Two processes find no race on file: the second waits on the first's lock and reads its
    result instead of racing too (each race takes half a second, long enough to overlap)."""
    import multiprocessing

    calls = tmp_path / "calls"
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child():
        import time as clock

        def slow():
            with calls.open("a") as handle:
                handle.write("raced\n")
            clock.sleep(0.5)
            return dict(RESULT)

        race.measure = slow
        results.put(race.raced())

    children = [context.Process(target=child) for _ in range(2)]
    for process in children:
        process.start()
    got = [results.get(timeout=30) for _ in children]
    for process in children:
        process.join(timeout=30)
    assert got == [RESULT, RESULT]
    assert calls.read_text() == "raced\n"
    assert json.loads(cache.read_text()) == {race.race_key(): RESULT}
