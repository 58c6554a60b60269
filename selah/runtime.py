"""What this process runs on: the torch device a setting names, the runtime of the INT8
student's linear layers, and peak memory.

The service's `GPTOSS_DEVICE`, the teacher's and the student's `--device` all resolve here, so
`auto` means the same everywhere: CUDA, then Apple MPS, then the CPU.

The runtime (`GPTOSS_RUNTIME`) is derived from the INT8 checkpoint in memory at load
(`selah.int8.apply_runtime`), never shipped:
- `int8`: torch's int8 GEMM (`torch._int_mm`) with activations quantized per token, the numerics
  the export checked against the float student. The runtime of a CPU without bf16
  instructions, and the faster one on some CPUs with AVX-512 BF16 but no AMX tiles.
- `int8-compiled`: `int8` with the backbone compiled by `torch.compile` (inductor fuses the
  activation quantization, rescaling and GELU around the int8 GEMMs; needs a C++ compiler).
  Faster per song, but the first load of a checkpoint compiles for a minute or more (later
  loads reuse inductor's cache), so it is never picked by `auto`.
- `bf16`: the int8 weights dequantized once to bfloat16 (SmoothQuant factors folded in) and the
  whole backbone run in bf16 (oneDNN GEMMs with float32 accumulation on weights prepacked once,
  the BERT family's layers fused (`selah.fused`), attention, LayerNorms); pooling and heads stay
  float32. Each GEMM is padded to a row count from which oneDNN's kernel, and so a row's result,
  no longer depends on the number of rows, calibrated once per machine and GEMM and kept on disk
  (`selah.floors`). Chosen where the CPU has AMX bf16 tiles, on which it is about 4x float32,
  and where it wins the race below.
- `float32`: the int8 weights dequantized once to float32: the reference the others are measured
  against (`scripts/bench_analyzer.py --runtimes`). Not batch-invariant: a float32 GEMM may
  round a row differently with the number of rows, so a song's last bits can change with its
  batch (int8's integer GEMM and bf16's oneDNN kernels do not).
- `dequantized`: on CUDA and MPS, each `Int8Linear` dequantizes its weight once to the dtype of
  its inputs (bf16 for gpt-oss) and runs a float GEMM there; it is the only runtime off the CPU.

`auto` (the default of `GPTOSS_RUNTIME`) picks `bf16` on a CPU whose flags list `amx_bf16`,
`int8` on a CPU that lists neither `amx_bf16` nor `avx512_bf16`, and between the two the faster
of `bf16` and `int8`, raced once per machine and kept on disk (`selah.race`): AVX-512 BF16 alone
is slower than `int8` on some chips and twice as fast on others. A runtime asked for that this
machine cannot run falls back (to `int8` on a CPU, `dequantized` elsewhere) and the reason is
kept: the analyzer's info, `/readyz`, the result snapshot and `/metrics` name the runtime in use.
"""

import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda", "mps")
RUNTIMES = ("auto", "int8", "int8-compiled", "bf16", "float32")
CPUINFO = Path("/proc/cpuinfo")


class DeviceUnavailable(ValueError):
    """The device asked for is unknown or not available here; the message says what to use."""


def _has_mps(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(requested: str | None, setting: str = "--device") -> str:
    """The torch device name for `requested` (`auto`: cuda, then mps, then cpu). Raises
    `DeviceUnavailable`, naming `setting` (the option or variable that asked), when the device is
    unknown or missing, before any weights load."""
    import torch

    name = (requested or "auto").strip().lower()
    if name not in DEVICES:
        raise DeviceUnavailable(f"{setting}={requested!r} is not one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if _has_mps(torch) else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"{setting}=cuda, but torch {torch.__version__} sees no CUDA device (a CPU build, or "
            f"no driver); set {setting}=cpu or auto")
    if name == "mps" and not _has_mps(torch):
        raise DeviceUnavailable(f"{setting}=mps, but the MPS backend is not available on this "
                                f"machine; set {setting}=cpu or auto")
    return name


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process so far, in MiB (None where the OS cannot say)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, AttributeError, OSError):
        return None
    # Linux reports KiB, macOS bytes.
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / (1 << 10), 1)


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime a load uses, what was asked for, and why this one."""

    name: str
    requested: str
    reason: str


def cpuinfo_field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The first `name: value` line's value in Linux's `/proc/cpuinfo` (None: no such line, or
    no such file)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as the OS reports them (Linux `/proc/cpuinfo`; empty elsewhere).
    The OS's list is the one that counts: a CPU whose tiles the kernel has not enabled does not
    list `amx_*`, and its AMX instructions fault."""
    return frozenset((cpuinfo_field("flags", cpuinfo) or "").split())


def choose_runtime(requested: str | None, device: str, flags: frozenset[str] | None = None,
                   race=None) -> RuntimeChoice:
    """The runtime for `GPTOSS_RUNTIME=requested` on `device` (see the module doc); a name not in
    `RUNTIMES` raises ValueError. `race` (default `selah.race.raced`) answers `auto` on a CPU
    with AVX-512 BF16 but no AMX tiles: `{"runtime", "int8_ms", "bf16_ms"}`."""
    asked = (requested or "auto").strip().lower()
    if asked not in RUNTIMES:
        raise ValueError(f"GPTOSS_RUNTIME={requested!r} is not one of {', '.join(RUNTIMES)}")
    if device != "cpu":
        why = f"{device}: int8 weights dequantized to the activations' dtype"
        return RuntimeChoice("dequantized", asked,
                             why if asked == "auto" else f"{asked} runs on the CPU only; {why}")
    flags = cpu_flags() if flags is None else flags
    tiles = "amx_bf16" in flags
    if asked == "auto":
        if tiles:
            return RuntimeChoice("bf16", asked, "the CPU has AMX bf16 tiles (amx_bf16)")
        if "avx512_bf16" in flags and _onednn_bf16():
            return _raced(asked, race)
        return RuntimeChoice("int8", asked, "the CPU lists no bf16 instructions (AMX tiles "
                                            "or AVX-512 BF16): int8 GEMMs")
    if asked == "bf16" and not (tiles or "avx512_bf16" in flags):
        return RuntimeChoice("int8", asked, "bf16 asked for, but the CPU lists neither amx_bf16 "
                                            "nor avx512_bf16: int8 instead")
    return RuntimeChoice(asked, asked, "asked for by GPTOSS_RUNTIME")


def _onednn_bf16() -> bool:
    from selah.int8 import onednn_bf16_linear

    return onednn_bf16_linear()


def _raced(asked: str, race) -> RuntimeChoice:
    """`auto` on AVX-512 BF16 without tiles: the faster of bf16 and int8 here (`selah.race`)."""
    if race is None:
        from selah.race import raced as race
    try:
        result = race()
    except Exception as exc:  # noqa: BLE001 - a race that cannot run: the safe runtime
        return RuntimeChoice("int8", asked, f"AVX-512 BF16 without AMX tiles; the race with "
                                            f"bf16 failed ({type(exc).__name__}: {exc}): int8")
    return RuntimeChoice(result["runtime"], asked,
                         f"AVX-512 BF16 without AMX tiles, raced on this CPU: a pass took "
                         f"{result['bf16_ms']:.1f} ms in bf16, {result['int8_ms']:.1f} ms in int8")


class HeapTrimmer:
    """Gives the memory that freed tensors leave in the C heap back to the OS: glibc's
    `malloc_trim(0)` once every `every_chars` characters of lyrics analysed (a no-op where there
    is no glibc).

    Without it a serving process grows by hundreds of MB over a few hundred songs of varied
    length: glibc raises its mmap threshold after freeing large blocks, so later activation
    buffers come from the heap, and the freed gaps between them stay resident. The memory a pass
    churns grows with the tokens it reads, so trims are spaced by characters, not calls. Until
    the next trim a process holds what its last calls freed, about their working set (up to one
    pass of 8,192 tokens: 150 MB here): with a trim every 50,000 characters a run of 2,000
    varied songs ended 176 MB above its reading at song 200, after a 35,000-character batch
    that had not reached the next trim, while the readings right after trims stayed flat. Every
    10,000 characters (about 6 songs of the data set's median length; a call of more trims right
    after it), a trim gives back 20-150 MB in 2-13 ms, 1-2% of the analysis it follows (AMD
    EPYC, 2 cores). Fixing glibc's mmap threshold instead (`mallopt`) kept memory flatter but
    made analysis slower: every large tensor then faults its pages in afresh."""

    def __init__(self, every_chars: int = 10_000):
        self.every_chars, self.pending, self.trims = every_chars, 0, 0
        self._lock = threading.Lock()
        self._trim = _malloc_trim()

    def analysed(self, chars: int) -> None:
        """Count `chars` characters just analysed; trim when `every_chars` have passed since the
        last trim."""
        with self._lock:
            self.pending += chars
            if self.pending < self.every_chars or self._trim is None:
                return
            self.pending = 0
            self.trims += 1
        self._trim(0)

    def trim(self) -> None:
        """Trim now (after a load, whose calibration leaves about 700 MB of freed heap here)."""
        if self._trim is not None:
            with self._lock:
                self.pending = 0
                self.trims += 1
            self._trim(0)


class TorchThread:
    """The one thread that runs a serving process's torch work (`run`), loads included.

    torch's CPU kernels run in OpenMP thread teams, one team per calling thread, kept for as long
    as that thread lives. GNU OpenMP's idle team threads spin, waiting for the next parallel
    region, only while the threads it manages are no more than the CPUs; beyond that every team
    sleeps between regions and each op pays a wake-up. Measured here (2 cores): a bf16 add of
    [512, 384] took 11 us from one thread and 83 us once a second thread had run torch, and a
    single song 25.6 ms on the main thread against 32.3 ms from a request thread. A web server's
    request and job threads would each leave a team behind; funnelled through this one thread,
    the process keeps a single team. Calls are served one at a time, in the order they come (two
    passes at once would only share the same cores): a request waits at most for the pass in
    progress, a job's one song or an inline batch's group. The main thread runs its calls
    itself (a command-line run, a benchmark, a test: there the main thread is the one that runs
    torch)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._ident: int | None = None

    def _start(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # a new thread's OpenMP team has the default size
        self._ident = threading.get_ident()

    def run(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` on the torch thread (here, on the main thread or the torch
        thread itself); its result or its exception."""
        if threading.current_thread() is threading.main_thread() or (
                threading.get_ident() == self._ident and os.getpid() == self._pid):
            return fn(*args, **kwargs)
        with self._lock:
            if self._pool is None or self._pid != os.getpid():  # none yet, or a forked child
                import torch

                self._pool = ThreadPoolExecutor(1, "selah-torch", self._start,
                                                (torch.get_num_threads(),))
                self._pid = os.getpid()
            pool = self._pool
        return pool.submit(fn, *args, **kwargs).result()


TORCH_THREAD = TorchThread()


def trim_heap() -> None:
    """glibc's `malloc_trim(0)` now (nothing where there is no glibc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries: nothing to call
        return None
