"""selah.runtime: one meaning of `auto` and one refusal message for every device setting."""

import pytest
import torch

from selah.int8 import onednn_bf16_linear
from selah.runtime import (
    DeviceUnavailable,
    choose_runtime,
    cpu_flags,
    peak_rss_mib,
    resolve_device,
)
from tests.selah.cpu import needs_onednn_bf16


def test_auto_takes_the_best_device_there_is():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto") == expected == resolve_device(None) == resolve_device(" AUTO ")
    assert resolve_device("cpu") == "cpu"


def test_an_unknown_device_names_the_setting_and_the_choices():
    with pytest.raises(DeviceUnavailable, match=r"GPTOSS_DEVICE='tpu' is not one of auto, cpu"):
        resolve_device("tpu", "GPTOSS_DEVICE")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_cuda_is_refused_with_what_to_set_instead():
    with pytest.raises(DeviceUnavailable, match=r"--device=cuda, but torch .* set --device=cpu"):
        resolve_device("cuda", "--device")


def test_peak_memory_is_a_positive_number_of_mib():
    peak = peak_rss_mib()
    assert peak is not None and 10 < peak < 1 << 20


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: {flags}\n")
    return path


def test_cpu_flags_are_read_from_the_os_list(tmp_path):
    assert cpu_flags(_cpuinfo(tmp_path, "fpu avx512f avx512_vnni")) == {
        "fpu", "avx512f", "avx512_vnni"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def _race(winner: str):
    """A stand-in for `selah.race.raced` that `winner` wins, counting its calls."""
    def race():
        race.calls += 1
        return {"runtime": winner, "bf16_ms": 10.0 if winner == "bf16" else 30.0, "int8_ms": 20.0}
    race.calls = 0
    return race


@pytest.mark.parametrize("flags, runtime", [
    ({"avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"}, "bf16"),
    ({"avx512_vnni", "avx2"}, "int8"),
    (set(), "int8"),
])
def test_auto_takes_bf16_on_amx_tiles_and_int8_without_bf16_instructions(flags, runtime):
    race = _race("bf16")
    choice = choose_runtime("auto", "cpu", frozenset(flags), race)
    assert choice.name == runtime and choice.requested == "auto"
    assert ("amx_bf16" in choice.reason) == (runtime == "bf16")
    assert choose_runtime(None, "cpu", frozenset(flags), race) == choice
    assert race.calls == 0  # the flags decide: no race


@needs_onednn_bf16
@pytest.mark.parametrize("winner", ["bf16", "int8"])
def test_auto_races_bf16_and_int8_on_avx512_bf16_without_tiles(winner):
    race = _race(winner)
    choice = choose_runtime("auto", "cpu", frozenset({"avx512_vnni", "avx512_bf16"}), race)
    assert choice.name == winner and race.calls == 1
    assert "raced on this CPU" in choice.reason and "20.0 ms in int8" in choice.reason
    # Asked for by name, a runtime is taken without a race.
    assert choose_runtime("int8", "cpu", frozenset({"avx512_bf16"}), race).name == "int8"
    assert race.calls == 1


@needs_onednn_bf16
def test_a_race_that_fails_falls_back_to_int8_saying_why():
    def broken():
        raise RuntimeError("no kernel")

    choice = choose_runtime("auto", "cpu", frozenset({"avx512_bf16"}), broken)
    assert choice.name == "int8" and "RuntimeError: no kernel" in choice.reason


def test_a_runtime_asked_for_is_taken_or_falls_back_saying_why():
    assert choose_runtime("float32", "cpu", frozenset()).name == "float32"
    assert choose_runtime(" BF16 ", "cpu", frozenset({"avx512_bf16"})).name == "bf16"
    fallback = choose_runtime("bf16", "cpu", frozenset({"avx2"}))
    assert fallback.name == "int8" and fallback.requested == "bf16"
    assert "neither amx_bf16 nor avx512_bf16" in fallback.reason
    for device in ("cuda", "mps"):
        choice = choose_runtime("int8", device, frozenset())
        assert choice.name == "dequantized" and "CPU only" in choice.reason
        assert choose_runtime("auto", device).name == "dequantized"
    with pytest.raises(ValueError, match=r"GPTOSS_RUNTIME='int4' is not one of auto, int8"):
        choose_runtime("int4", "cpu")


def test_this_machine_gets_a_runtime_it_lists(monkeypatch, tmp_path):
    monkeypatch.setenv("SELAH_RUNTIME_RACE_CACHE", str(tmp_path / "race.json"))
    monkeypatch.setattr("selah.race._RACES", {})
    flags = cpu_flags()
    choice = choose_runtime("auto", "cpu")
    if "amx_bf16" in flags:
        assert choice.name == "bf16"
    elif "avx512_bf16" in flags and onednn_bf16_linear():
        assert choice.name in ("bf16", "int8") and "raced on this CPU" in choice.reason
    else:
        assert choice.name == "int8"


def _on_threads(fn, count: int) -> list:
    """`fn()` from `count` threads, one after the other; their results."""
    import threading

    results = []
    for _ in range(count):
        thread = threading.Thread(target=lambda: results.append(fn()))
        thread.start()
        thread.join()
    return results


def test_torch_work_from_any_thread_runs_on_one_thread_and_the_main_thread_runs_its_own():
    import threading

    from selah.runtime import TorchThread

    runner = TorchThread()
    ran_on = _on_threads(lambda: runner.run(threading.get_ident), 3)
    assert len(set(ran_on)) == 1  # three callers, one torch thread
    assert ran_on[0] not in (threading.get_ident(), None)
    assert runner.run(threading.get_ident) == threading.get_ident()  # the main thread: inline
    # A call made from the torch thread itself runs there at once (no deadlock on itself).
    nested = _on_threads(lambda: runner.run(lambda: runner.run(threading.get_ident)), 1)
    assert nested == ran_on[:1]


def test_the_torch_thread_hands_back_results_and_exceptions_and_keeps_torch_s_threads():
    from selah.runtime import TorchThread

    runner = TorchThread()
    assert _on_threads(lambda: runner.run(lambda a, b=0: a + b, 2, b=3), 1) == [5]

    def fails():
        raise ValueError("no such song")

    def caught():
        try:
            runner.run(fails)
        except ValueError as exc:
            return str(exc)

    assert _on_threads(caught, 1) == ["no such song"]
    assert _on_threads(lambda: runner.run(torch.get_num_threads), 1) == [torch.get_num_threads()]
