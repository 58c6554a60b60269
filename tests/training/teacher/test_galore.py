"""GaLore parameter grouping, the CPU-SVD projector and the safely loadable optimizer state."""

import io

import pytest
import torch

from training.teacher.galore import (TARGETS, build_optimizer, cpu_svd_projector, galore_parameters,
                                     load_optimizer_state, optimizer_state, param_groups)
from training.teacher.model import load_causal_lm


@pytest.fixture
def model(tiny_teacher):
    return load_causal_lm(str(tiny_teacher))[0]


def test_galore_covers_exactly_the_attention_and_mlp_projections(model):
    groups = param_groups(model, rank=4, update_proj_gap=10, scale=0.25)
    galore, other = groups
    names = {id(p): n for n, p in model.named_parameters()}
    galore_names = sorted(names[id(p)] for p in galore["params"])
    layers = model.config.num_hidden_layers
    assert len(galore_names) == layers * len(TARGETS)
    assert all(n.endswith(".weight") and n.split(".")[-2] in TARGETS for n in galore_names)
    assert galore["rank"] == 4 and galore["update_proj_gap"] == 10 and galore["scale"] == 0.25
    other_names = {names[id(p)] for p in other["params"]}
    assert "model.embed_tokens.weight" in other_names and "lm_head.weight" in other_names
    assert not other_names & set(galore_names)
    assert len(other_names) + len(galore_names) == len(list(model.parameters()))


def test_only_named_targets_are_grouped(model):
    chosen = galore_parameters(model, ("q_proj",))
    assert sorted(chosen) == [f"model.layers.{i}.self_attn.q_proj.weight"
                              for i in range(model.config.num_hidden_layers)]
    with pytest.raises(ValueError, match="galore_targets"):
        param_groups(model, 4, 10, 0.25, targets=("no_such_module",))


def _step(model, optimizer, seed):
    torch.manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@pytest.mark.parametrize("cpu_svd", [False, True])
def test_state_with_projectors_reloads_with_weights_only(tiny_teacher, cpu_svd):
    model_a = load_causal_lm(str(tiny_teacher))[0]
    optimizer_a = build_optimizer(param_groups(model_a, 4, 3, 0.25), 1e-2, cpu_svd=cpu_svd)
    for seed in range(2):
        _step(model_a, optimizer_a, seed)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer_state(optimizer_a), "model": model_a.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # no pickled projector objects
    model_b = load_causal_lm(str(tiny_teacher))[0]
    model_b.load_state_dict(saved["model"])
    optimizer_b = build_optimizer(param_groups(model_b, 4, 3, 0.25), 1e-2, cpu_svd=cpu_svd)
    load_optimizer_state(optimizer_b, saved["optimizer"])
    projector = next(s["projector"] for s in optimizer_b.state.values() if "projector" in s)
    assert type(projector).__name__ == ("CPUSVDProjector" if cpu_svd else "GaLoreProjector")
    for seed in (2, 3):  # step 3 recomputes the projection (update gap 3)
        _step(model_a, optimizer_a, seed)
        _step(model_b, optimizer_b, seed)
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.equal(a, b), name


def test_cpu_svd_projector_matches_the_plain_one():
    from galore_torch.galore_projector import GaLoreProjector

    torch.manual_seed(0)
    grad = torch.randn(16, 8, dtype=torch.bfloat16)
    plain = GaLoreProjector(4, update_proj_gap=1).project(grad, 0)
    cpu = cpu_svd_projector(4, update_proj_gap=1)
    low = cpu.project(grad, 0)
    assert low.dtype == grad.dtype and cpu.ortho_matrix.dtype == torch.bfloat16
    assert torch.allclose(low.float(), plain.float(), atol=1e-2)
