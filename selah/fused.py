"""The bf16 runtime's fusions for the BERT family's layers (the shipped student's MiniLM).

On the CPU every op of an eager forward pass costs a dispatch and a trip through memory, and at a
single song's 512 rows a GEMM of 384 outputs keeps only one of the two cores busy. So after
`selah.int8.apply_runtime` has made every linear layer a bf16 `DequantizedLinear`,
`fuse_bert_layers` rewrites each transformers `BertLayer` of an encoder:

- self-attention: the query, key and value projections as one GEMM of three times the outputs
  (`FusedSelfAttention`; the same dot products, a third of the calls);
- the exact GELU after the intermediate projection, into that GEMM (`activation="gelu"`);
- each output projection's residual add, into its GEMM (`FusedOutput`; `adds_residual`), the
  LayerNorm after it unchanged.

GELU and the residual are then applied to the float32 accumulator, one rounding to bf16 where
there were two. Measured on the shipped student, 2 windows of 256 tokens: 22.1 ms a pass before,
19.8 ms fused (`docs/benchmarks.md`). Anything else, a decoder's attention with its cache or
another family's layers, is left as it is.
"""

import torch.nn.functional as F
from torch import nn

from selah.int8 import DequantizedLinear


def _exact_gelu(module: nn.Module | None) -> bool:
    """Whether `module` is the exact (erf) GELU: torch's, or transformers' `GELUActivation`."""
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    return type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is F.gelu


class FusedSelfAttention(nn.Module):
    """transformers' `BertSelfAttention` (an encoder's: no cache) with its query, key and value
    projections run as one GEMM; the attention itself is the model's configured interface."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.config = attention.config
        self.num_attention_heads = attention.num_attention_heads
        self.attention_head_size = attention.attention_head_size
        self.scaling = attention.scaling
        self.is_causal = attention.is_causal
        self.dropout = attention.dropout
        self.qkv = DequantizedLinear.stacked([attention.query, attention.key, attention.value])
        self.train(attention.training)

    def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
        if cache is not None:  # an encoder is given none; a decoder is never fused
            raise ValueError("FusedSelfAttention keeps no cache")
        from transformers.models.bert.modeling_bert import (
            ALL_ATTENTION_FUNCTIONS,
            eager_attention_forward,
        )

        shape = hidden_states.shape[:-1]
        projected = self.qkv(hidden_states).view(*shape, 3, self.num_attention_heads,
                                                 self.attention_head_size)
        query, key, value = (part.transpose(1, 2) for part in projected.unbind(-3))
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation,
                                                       eager_attention_forward)
        output, weights = attend(self, query, key, value, attention_mask,
                                 dropout=0.0 if not self.training else self.dropout.p,
                                 scaling=self.scaling, **kwargs)
        return output.reshape(*shape, -1).contiguous(), weights


class FusedOutput(nn.Module):
    """transformers' `BertSelfOutput` or `BertOutput` with the residual added inside the dense
    GEMM: `LayerNorm(dense(hidden) + input)`, dropout being off in inference."""

    def __init__(self, output: nn.Module):
        super().__init__()
        self.dense, self.LayerNorm, self.dropout = output.dense, output.LayerNorm, output.dropout
        self.dense.adds_residual = True
        self.train(output.training)

    def forward(self, hidden_states, input_tensor):
        if self.training and self.dropout.p > 0:  # dropout sits between the GEMM and the add
            raise RuntimeError("FusedOutput runs in inference only (eval mode)")
        return self.LayerNorm(self.dense(hidden_states, input_tensor))


def fuse_bert_layers(backbone: nn.Module) -> int:
    """Fuse every transformers `BertLayer` of `backbone` whose linear layers are bf16
    `DequantizedLinear`s (see the module doc); returns how many layers were fused."""
    try:
        from transformers.models.bert.modeling_bert import BertLayer, BertSelfAttention
    except ImportError:
        return 0
    fused = 0
    for layer in backbone.modules():
        if not isinstance(layer, BertLayer) or getattr(layer, "crossattention", None) is not None:
            continue
        attention = layer.attention.self
        if type(attention) is not BertSelfAttention:  # fused already, or another kind
            continue
        projections = (attention.query, attention.key, attention.value,
                       layer.attention.output.dense, layer.intermediate.dense, layer.output.dense)
        if attention.config.is_decoder or not all(
                isinstance(p, DequantizedLinear) for p in projections):
            continue
        layer.attention.self = FusedSelfAttention(attention)
        layer.attention.output = FusedOutput(layer.attention.output)
        layer.output = FusedOutput(layer.output)
        if _exact_gelu(layer.intermediate.intermediate_act_fn):
            layer.intermediate.dense.activation = "gelu"
            layer.intermediate.intermediate_act_fn = nn.Identity()
        fused += 1
    return fused
