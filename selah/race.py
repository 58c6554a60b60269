"""`auto`'s choice between the CPU runtimes `bf16` and `int8` where the CPU's flags cannot make
it: the two raced once per machine and thread count, the result kept on disk.

AMX bf16 tiles (`amx_bf16`) make `bf16` the faster by far, and a CPU with neither those tiles
nor AVX-512 BF16 has no fast bf16 at all. Between the two, AVX-512 BF16 without tiles, it
depends on the chip: on a 2-core Intel Xeon of 2026-12-02 one 4096 x 384 x 1536 GEMM took
29.8 ms in bf16 against 5.0 ms in int8 (`int8` served 1.4x as many songs), while on a 2-core AMD
EPYC of 2026-12-07 (full-width AVX-512 BF16 and VNNI) `bf16` served 2.0x as many songs as `int8`
(`docs/benchmarks.md`). So there `auto` races them.

The race runs what the runtimes run, not a lone GEMM (on that EPYC int8's GEMM alone was twice
as fast as bf16's; its activation quantization, rescaling and float32 attention and LayerNorms
are what lose): a two-layer BERT encoder of the shipped student's shape (MiniLM: 384 wide, 12
heads, 1,536 inner) with random weights, its linear layers made `Int8Linear` as in a
checkpoint, once as loaded (`int8`) and once through `selah.int8.apply_runtime(..., "bf16")`
(dequantized, fused, bf16 throughout; GEMMs unpadded: the race times kernels, not the row
floors). Each is timed on one song's two 256-token windows and on a batch pass of 16, the two
alternating, median of `REPEATS` passes; the runtime with the smaller sum wins. About half a
second. The result is kept in memory and in `$SELAH_RUNTIME_RACE_CACHE`, else
`~/.cache/selah/runtime-race.json` (an empty setting: memory only), keyed by the CPU's model and
flags, torch's version and the thread count (`selah.machine_cache`), so a machine's processes
all run the same runtime and a restart does not change a song's numbers (the first process to
race holds a lock on the file meanwhile; the others wait for its result instead of racing on
the same cores at once).
"""

import copy
import statistics
import time

from selah import machine_cache

REPEATS = 5
WINDOWS = (2, 16)  # one song of two 256-token windows, a batch pass of 16
TOKENS = 256
_RACES: dict[str, dict] = {}


def cache_file():
    """Where races are kept on disk (None: not on disk)."""
    return machine_cache.cache_file("SELAH_RUNTIME_RACE_CACHE", "runtime-race.json")


def race_key() -> str:
    """What decides a race's result: the machine and the thread count."""
    import torch

    return f"{machine_cache.machine()} threads={torch.get_num_threads()} race=bert-384x2"


def _encoder():
    """The race's model: two random BERT layers of MiniLM's shape, linear layers int8."""
    import torch
    from torch import nn
    from transformers import BertConfig, BertModel

    from selah.int8 import Int8Linear, set_module

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=64, hidden_size=384, num_hidden_layers=2,
                            num_attention_heads=12, intermediate_size=1536,
                            max_position_embeddings=TOKENS, attn_implementation="sdpa")
        encoder = BertModel(config, add_pooling_layer=False).eval()
    for name, module in list(encoder.named_modules()):
        if isinstance(module, nn.Linear):
            set_module(encoder, name, Int8Linear.from_float(module))
    holder = nn.Module()  # what `apply_runtime` expects: a model with a `backbone`
    holder.backbone = encoder
    return holder


def measure(repeats: int = REPEATS) -> dict:
    """Race `int8` and `bf16` here now: `{"int8_ms": ..., "bf16_ms": ..., "runtime": winner}`,
    each time the sum over `WINDOWS` of the median pass, in ms."""
    import torch

    from selah.int8 import DequantizedLinear, apply_runtime

    int8 = _encoder()
    bf16 = apply_runtime(copy.deepcopy(int8), "bf16")
    for module in bf16.modules():
        if isinstance(module, DequantizedLinear):
            module.min_rows = 0
    totals = {"int8": 0.0, "bf16": 0.0}
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for windows in WINDOWS:
            ids = torch.randint(0, 64, (windows, TOKENS), generator=generator)
            mask = torch.ones_like(ids)
            times = {"int8": [], "bf16": []}
            for turn in range(repeats + 1):  # the first turn warms up (packs bf16's weights)
                for name, model in (("int8", int8), ("bf16", bf16)):
                    started = time.perf_counter()
                    model.backbone(input_ids=ids, attention_mask=mask)
                    if turn:
                        times[name].append(time.perf_counter() - started)
            for name in totals:
                totals[name] += statistics.median(times[name]) * 1000
    result = {f"{name}_ms": round(ms, 2) for name, ms in totals.items()}
    return {**result, "runtime": "bf16" if totals["bf16"] < totals["int8"] else "int8"}


def _valid(entry) -> bool:
    return (isinstance(entry, dict) and entry.get("runtime") in ("bf16", "int8")
            and all(isinstance(entry.get(f"{n}_ms"), (int, float)) for n in ("int8", "bf16")))


def raced() -> dict:
    """This machine's race (see `measure`): from memory, else from the file, else run now and
    kept in both. All of it on the process's torch thread (`selah.runtime.TorchThread`): the
    race's torch work belongs there, and a thread that held the file's lock while it waited for
    the torch thread could otherwise block a race asked for on the torch thread itself."""
    from selah.runtime import TORCH_THREAD

    return TORCH_THREAD.run(lambda: machine_cache.recall(_RACES, cache_file(), race_key(),
                                                         measure, _valid))
