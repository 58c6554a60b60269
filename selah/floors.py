"""The row floors of the bf16 runtime's GEMMs: calibrated once per CPU, torch build, thread
count and GEMM, then kept in memory and on disk.

oneDNN's AMX bf16 kernels reduce a GEMM of few rows in another order than one of many (seen on
the 2-core machines here: row counts under 512-768 for K >= 768, none for K = 384), so a
window's numbers would change with the number of windows beside it. Each bf16 GEMM on the CPU is
therefore padded with zero rows to a floor from which its results no longer depend on the row
count (`bf16_row_floor`). Finding a floor runs the GEMM at every row count a pass can have, about
7 s for the shipped student's five kinds of GEMM, so floors are kept in a JSON file keyed by
everything that decides the kernel: the CPU's model and flags, torch's version (which fixes the
oneDNN it bundles), the thread count, the GEMM's shape and post-ops, and the row counts. The file is
`$SELAH_FLOOR_CACHE`, else `~/.cache/selah/bf16-row-floors.json`; an empty `SELAH_FLOOR_CACHE`
turns the file off. A file that cannot be read or written is ignored (the floors are calibrated
again); nothing in it is shipped. Processes loading at once calibrate a floor once: the file is
locked meanwhile (`selah.machine_cache.recall`).
"""

import hashlib
from collections.abc import Sequence

import torch

from selah import machine_cache
from selah.runtime import trim_heap

_FLOORS: dict[str, int] = {}


def cache_file():
    """Where the floors are kept on disk (None: not on disk)."""
    return machine_cache.cache_file("SELAH_FLOOR_CACHE", "bf16-row-floors.json")


def floor_key(layer, rows: Sequence[int]) -> str:
    """The key of `layer`'s floor over `rows`: what decides the kernel oneDNN runs."""
    counts = hashlib.sha256(",".join(map(str, rows)).encode()).hexdigest()[:16]
    return (f"{machine_cache.machine()} threads={torch.get_num_threads()} "
            f"gemm={layer.out_features}x{layer.in_features} {layer.weight.dtype} "
            f"activation={layer.activation} residual={layer.adds_residual} rows={counts}")


def calibrate(layer, rows: Sequence[int]) -> int:
    """The fewest of `rows` from which `layer.gemm` gives each row exactly what the largest of
    `rows` gives it: random inputs (and residuals, for a layer that adds one) through every row
    count, compared bit for bit (the kernel depends on the shape, the post-ops and the thread
    count, not on the values)."""
    rows = sorted(set(rows))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows[-1], layer.in_features, generator=generator).to(layer.weight.dtype)
    residual = (torch.randn(rows[-1], layer.out_features, generator=generator)
                .to(layer.weight.dtype) if layer.adds_residual else None)

    def run(count: int) -> torch.Tensor:
        return layer.gemm(x[:count], None if residual is None else residual[:count])

    differing = []
    with torch.inference_mode():
        want = run(rows[-1])
        for i, count in enumerate(rows[:-1]):
            if not torch.equal(run(count), want[:count]):
                differing.append(i)
            if i % 16 == 15:  # each row count's output is a new block: give the heap back
                trim_heap()
    return rows[differing[-1] + 1] if differing else rows[0]


def bf16_row_floor(layer, rows: Sequence[int]) -> int:
    """`layer`'s floor over `rows` (a `selah.int8.DequantizedLinear`; `rows` the row counts a
    forward pass can have): from memory, else from the file, else calibrated and kept in both."""
    rows = sorted(set(rows))

    def calibrated() -> int:
        floor = calibrate(layer, rows)
        trim_heap()  # what the calibration's tensors held, now freed
        return floor

    return machine_cache.recall(_FLOORS, cache_file(), floor_key(layer, rows), calibrated,
                                lambda stored: isinstance(stored, int) and stored in rows)
