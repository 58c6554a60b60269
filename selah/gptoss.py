"""gpt-oss as the student's backbone: loading, the harmony prompt, the real config.

gpt-oss differs from the encoders the generic student path was built on in four ways, each handled
here and nowhere else:

- Loading keeps no LM head: `GptOssModel` (`AutoModel`), not `GptOssForCausalLM`. The heads read
  the last token's hidden state; the 201,088 x 2,880 unembedding (0.58 B parameters) would never
  be used.
- The published checkpoints store the experts' fused `gate_up_proj` / `down_proj` tensors as MXFP4
  (4-bit blocks with one power-of-two scale per 32 values). Training and our own INT8 export need
  real numbers, so they are de-quantized to bf16 on load (`Mxfp4Config(dequantize=True)`); the
  other tensors are bf16 in the checkpoint already.
- Attention has learned "sinks" (one extra logit per head), which PyTorch's SDPA kernel cannot
  take: transformers marks gpt-oss `_supports_sdpa = False`, and without flash-attention kernels
  (CPU, MPS) eager attention is what runs. We ask for it explicitly so the choice does not depend
  on what happens to be installed.
- The model was trained on the harmony chat format, so the student reads each song as the
  harmony prompt the teacher would get (`selah.chat.render_chat`, date pinned to 2025-08-05),
  ending in the assistant cue: the last token is where the model has read the whole request.

`GPTOSS_20B` is the real gpt-oss-20b config (hidden 2880, 24 layers, 32 experts, top-4), used by
the memory planner and `scripts/device_check.py` to build the model without downloading it.
"""

from types import SimpleNamespace
from typing import Any

import torch

MODEL_TYPE = "gpt_oss"
ATTENTION = "eager"

# openai/gpt-oss-20b config.json (the fields that set sizes and numerics; the rest are defaults).
GPTOSS_20B: dict[str, Any] = {
    "model_type": MODEL_TYPE, "hidden_size": 2880, "num_hidden_layers": 24,
    "num_local_experts": 32, "num_experts_per_tok": 4, "intermediate_size": 2880,
    "head_dim": 64, "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
    "vocab_size": 201088, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
    "attention_bias": True, "tie_word_embeddings": False, "swiglu_limit": 7.0,
    "pad_token_id": 199999, "eos_token_id": 200002,
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                        "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                        "original_max_position_embeddings": 4096},
}


def is_gptoss(config: Any) -> bool:
    """Whether a transformers config (or its dict) is a gpt-oss model."""
    model_type = config.get("model_type") if isinstance(config, dict) else \
        getattr(config, "model_type", None)
    return model_type == MODEL_TYPE


def is_mxfp4(config: Any) -> bool:
    """Whether a gpt-oss config says its checkpoint stores the experts as MXFP4."""
    quantization = getattr(config, "quantization_config", None) or {}
    if not isinstance(quantization, dict):
        quantization = quantization.to_dict()
    return quantization.get("quant_method") == "mxfp4"


def load_kwargs(config: Any) -> dict:
    """`from_pretrained` arguments for a gpt-oss checkpoint: eager attention, and for an MXFP4
    checkpoint de-quantization to bf16 (the experts become plain bf16 tensors)."""
    kwargs: dict[str, Any] = {"attn_implementation": ATTENTION}
    if is_mxfp4(config):
        from transformers import Mxfp4Config

        kwargs.update(quantization_config=Mxfp4Config(dequantize=True), dtype=torch.bfloat16)
    return kwargs


def load_backbone(path: str, config: Any, **kwargs):
    """The `GptOssModel` (no LM head) of a local folder or hub id, ready for the student."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path, **{**load_kwargs(config), **kwargs})
    model.config.use_cache = False  # the student runs whole windows; a KV cache is dead weight
    return model


def backbone_from_config(config, dtype: torch.dtype | None = None):
    """A randomly initialised `GptOssModel` of `config` (eager attention, no KV cache)."""
    from transformers import AutoModel

    config.use_cache = False
    return AutoModel.from_config(config, attn_implementation=ATTENTION,
                                 **({"dtype": dtype} if dtype is not None else {}))


def harmony_prompt(tokenizer, song: dict) -> str:
    """The harmony prompt of a song (`{title, artist, lyrics}`): system message with the pinned
    date, the user turn in the upstream format, ending in the assistant cue `<|start|>assistant`.
    A lone surrogate, which the tokenizer cannot encode, becomes U+FFFD (as in `song_text`)."""
    from selah.chat import render_chat

    fields = {key: str(song[key]).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
              for key in ("title", "artist", "lyrics")}
    return render_chat(SimpleNamespace(**fields), tokenizer, "gptoss", with_answer=False)


def config_dict(config: Any) -> dict:
    """A backbone config as saved in `student.json`: without the checkpoint's quantization block
    (a student's weights are always de-quantized floats)."""
    values = config.to_dict()
    values.pop("quantization_config", None)
    return values
