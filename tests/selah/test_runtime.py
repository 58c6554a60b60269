"""selah.runtime: one meaning of `auto` and one refusal message for every device setting."""

import pytest
import torch

from selah.runtime import DeviceUnavailable, peak_rss_mib, resolve_device


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
