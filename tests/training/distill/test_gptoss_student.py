"""gpt-oss as the student being trained (harmony prompt, LoRA options, resume), tiny random.

What cannot be checked here: the real gpt-oss-20b weights and tokenizer (no download), and speed
or memory at size (`scripts/device_check.py` measures those on a GPU).
"""


import pytest
import torch
from safetensors.torch import load_file

from selah.chat import PINNED_DATE
from selah.inference import forward_songs
from selah.student import build_student, load_student, save_student
from tests.training.paths import SONGS
from training.data.readers import read_examples
from training.distill.adapters import apply_adapter, plain_state_dict
from training.distill.loop import Distiller


@pytest.fixture(scope="module")
def songs():
    return [e.song() for e in read_examples(SONGS)[0]]


def test_the_student_reads_the_harmony_prompt_with_the_pinned_date(tiny_config, tiny_gptoss,
                                                                   songs):
    distiller = Distiller(tiny_config(backbone=str(tiny_gptoss), trainable_layers=0))
    distiller.setup()
    featurizer = distiller.featurizer
    assert featurizer.prompt == "harmony"
    text = featurizer.texts(songs[:1])[0]
    assert f"Current date: {PINNED_DATE.isoformat()}" in text
    assert f"Title: {songs[0]['title']}" in text and text.endswith("<|start|>assistant")
    windows = featurizer(songs[:1])
    length = windows["attention_mask"][-1].sum()  # the last window's real tokens: the pooled one
    last_window = featurizer.tokenizer.decode(windows["input_ids"][-1, :length])
    assert last_window.endswith("<|start|>assistant")


# Each training option: what may train (parameter names of the student).
OPTIONS = {
    "heads only": ({"trainable_layers": 0}, lambda name: name.startswith("heads.")),
    "lora on attention": ({"adapter": "lora-attention", "trainable_layers": 1},
                          lambda name: name.startswith("heads.") or (
                              ".layers.1.self_attn." in name and ".lora_" in name)),
    "lora on experts": ({"adapter": "lora-experts", "trainable_layers": -1},
                        lambda name: name.startswith("heads.") or (
                            ".mlp.experts." in name and ".lora_" in name)),
}


@pytest.mark.parametrize("option", OPTIONS)
def test_each_training_option_trains_a_step_and_changes_only_what_it_should(
        option, tiny_config, tiny_gptoss, tmp_path):
    settings, may_train = OPTIONS[option]
    distiller = Distiller(tiny_config(backbone=str(tiny_gptoss), lr_backbone=0.01, **settings))
    distiller.setup()
    model = distiller.accelerator.unwrap_model(distiller.model)
    # The frozen part is cached (and the cache reproduced gpt-oss's own forward pass).
    assert distiller.cache_kind == ("pooled" if option == "heads only" else "hidden")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if may_train(n)}
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}

    losses = distiller._step([[0, 1, 2, 3]], distiller.config.head_weights())
    assert torch.isfinite(torch.tensor(losses["total"]))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= trainable  # everything else bit-for-bit unchanged
    assert {k for k in changed if k.startswith("heads.")}
    if "adapter" in settings:  # B starts at zero, so B is what the first step moves
        assert {k for k in trainable if ".lora_B." in k} <= changed

    # The saved student folder is a plain student (adapters merged) giving the same logits.
    if "adapter" in settings:
        with pytest.raises(ValueError, match="plain_state_dict"):
            save_student(model, distiller.tokenizer, tmp_path / "student", distiller.featurizer)
    save_student(model, distiller.tokenizer, tmp_path / "student", distiller.featurizer,
                 state=plain_state_dict(model))
    loaded, featurizer, description = load_student(tmp_path / "student")
    assert description["prompt"] == "harmony" and description["pooling"] == "last_token"
    assert not any("lora" in k for k in load_file(str(tmp_path / "student/model.safetensors")))
    songs = [e.song() for e in distiller.songs[:3]]
    ours, theirs = forward_songs(model, featurizer, songs), forward_songs(loaded, featurizer, songs)
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-4) for k in ours)


def test_lora_on_experts_gives_each_expert_its_own_rank_r_update(tiny_gptoss):
    model, _ = build_student(str(tiny_gptoss))
    apply_adapter(model, "lora-experts", [1], rank=4)
    experts = model.backbone.layers[1].mlp.experts
    config = model.backbone.config
    lora_a = dict(experts.named_parameters())["lora_A.default.weight"]  # the outer: down_proj
    assert lora_a.shape == (4 * config.num_local_experts, config.intermediate_size)
    assert not any("lora" in n for n, _ in model.backbone.layers[0].named_parameters())
    with torch.no_grad():
        for name, param in experts.named_parameters():
            if "lora_B" in name:
                param.normal_()
    merged = plain_state_dict(model)
    base = model.state_dict()
    key = "backbone.layers.1.mlp.experts.down_proj"
    wrapped = next(k for k in base if k.startswith("backbone.layers.1.mlp.experts.base_layer")
                   and k.endswith(".down_proj"))  # PEFT nests one wrapper per tensor
    delta = merged[key] - base[wrapped]
    assert delta.shape == (config.num_local_experts, config.intermediate_size,
                           config.hidden_size)
    assert all(torch.linalg.matrix_rank(d) <= 4 for d in delta)


def test_an_adapter_run_resumes_its_adapters(tiny_config, tiny_gptoss):
    settings = {"backbone": str(tiny_gptoss), "adapter": "lora-attention", "trainable_layers": 1,
                "epochs": 1}
    first = Distiller(tiny_config(stop_after_steps=1, **settings))
    first.run()
    trained = {k: v.clone() for k, v in first.accelerator.unwrap_model(
        first.model).state_dict().items() if ".lora_" in k}
    resumed = Distiller(tiny_config(**settings))
    resumed.setup()
    state = resumed.accelerator.unwrap_model(resumed.model).state_dict()
    assert resumed.state["global_step"] == 1
    assert all(torch.equal(state[k], v) for k, v in trained.items())
