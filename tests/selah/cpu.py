"""What the CPU running the tests can do, as test marks."""

import pytest

from selah.int8 import onednn_bf16_linear

# The bf16 runtime's kernels: oneDNN's prepacked bf16 linear needs AVX-512 BW/VL/DQ or
# AVX-NE-CONVERT. On an AVX2-only CPU the runtime is never chosen (`choose_runtime` falls back to
# int8) and a bf16 layer runs through F.linear, so what these tests check does not exist there.
needs_onednn_bf16 = pytest.mark.skipif(
    not onednn_bf16_linear(),
    reason="this CPU has no oneDNN bf16 linear (AVX-512 BW/VL/DQ or AVX-NE-CONVERT)")
