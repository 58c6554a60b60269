"""selah.gptoss: the gpt-oss backbone as the student loads it, on a tiny random `GptOssConfig`.

What cannot be checked here: the real gpt-oss-20b weights and tokenizer (no download), and speed
or memory at size (`scripts/device_check.py` measures those on a GPU).
"""

import json
import shutil

import torch
from safetensors.torch import load_file, save_file

from selah.gptoss import is_mxfp4, load_backbone
from selah.student import build_student


def test_the_student_has_no_lm_head_eager_attention_and_last_token_pooling(tiny_gptoss):
    model, tokenizer = build_student(str(tiny_gptoss))
    assert type(model.backbone).__name__ == "GptOssModel"
    assert not any("lm_head" in name for name, _ in model.named_parameters())
    assert model.backbone.config._attn_implementation == "eager"
    assert model.pooling == "last_token" and model.backbone.config.use_cache is False


def test_an_mxfp4_checkpoint_is_dequantized_to_bf16_on_load(tiny_gptoss, tmp_path):
    from transformers import AutoConfig
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    # The float backbone rewritten as gpt-oss ships: experts as MXFP4 blocks and scales.
    folder = shutil.copytree(tiny_gptoss, tmp_path / "mxfp4")
    state = load_file(str(folder / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    expected = {}
    for key in [k for k in state if k.endswith(("experts.gate_up_proj", "experts.down_proj"))]:
        experts, rows, columns = state.pop(key).shape  # [E, in, out]
        blocks = torch.randint(0, 256, (experts, columns, rows // 32, 16), dtype=torch.uint8,
                               generator=generator)
        scales = torch.randint(122, 130, (experts, columns, rows // 32), dtype=torch.uint8,
                               generator=generator)
        state[f"{key}_blocks"], state[f"{key}_scales"] = blocks, scales
        expected[key] = convert_moe_packed_tensors(blocks, scales)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    (folder / "config.json").write_text(json.dumps(config))

    assert is_mxfp4(AutoConfig.from_pretrained(folder))
    backbone = load_backbone(str(folder), AutoConfig.from_pretrained(folder))
    for key, value in expected.items():
        loaded = backbone.get_parameter(key)
        assert loaded.dtype == torch.bfloat16 and torch.equal(loaded, value), key
    assert type(backbone.layers[0].mlp.experts).__name__ == "GptOssExperts"  # plain, trainable
