"""The distillation loop's GaLore optimizer (`optimizer: galore`) on the tiny random BERT."""

import pytest
import torch
from safetensors.torch import load_file

from training.config import ConfigError
from training.distill.loop import Distiller
from training.distill.optim import galore_weights


def test_galore_projects_exactly_the_trained_linear_weights(tiny_config):
    distiller = Distiller(tiny_config(optimizer="galore", galore_rank=4, trainable_layers=1))
    distiller.setup()
    model = distiller.accelerator.unwrap_model(distiller.model)
    groups = {g["name"]: g for g in distiller.optimizer.param_groups}
    assert set(groups) == {"galore", "backbone", "heads"}
    projected = {id(p) for p in groups["galore"]["params"]}
    assert projected == {id(p) for p in galore_weights(model)} and projected
    assert all(p.dim() == 2 for p in groups["galore"]["params"])
    assert groups["galore"]["rank"] == 4
    # the frozen layers' weights are in no group; every trained parameter is in one
    grouped = {id(p) for g in groups.values() for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}


def test_a_galore_run_learns_and_resumes_exactly(tiny_config, tmp_path):
    settings = dict(optimizer="galore", galore_rank=4, galore_update_gap=2, trainable_layers=1,
                    epochs=2)
    straight = Distiller(tiny_config(out=str(tmp_path / "straight"), **settings))
    summary = straight.run()
    losses = [h["losses"]["total"] for h in summary["history"]]
    assert summary["epochs_done"] == 2 and all(loss > 0 for loss in losses)
    Distiller(tiny_config(out=str(tmp_path / "split"), stop_after_steps=4, **settings)).run()
    resumed = Distiller(tiny_config(out=str(tmp_path / "split"), **settings)).run()
    assert not resumed["interrupted"]
    a = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_trained_weights_move_within_a_low_rank_subspace(tiny_config):
    """One GaLore step changes a projected weight by an update of rank <= r (no weight decay,
    which would add a full-rank term)."""
    distiller = Distiller(tiny_config(optimizer="galore", galore_rank=2, trainable_layers=1,
                                      warmup_ratio=0.0, max_grad_norm=0.0, weight_decay=0.0))
    distiller.setup()
    weight = distiller.optimizer.param_groups[0]["params"][0]
    before = weight.detach().clone()
    distiller._step([[0, 1, 2, 3]], distiller.config.head_weights())
    delta = (weight.detach() - before).float()
    assert delta.abs().max() > 0
    assert torch.linalg.matrix_rank(delta, rtol=1e-4) <= 2


@pytest.mark.parametrize("settings", [dict(trainable_layers=0),
                                      dict(trainable_layers=1, adapter="lora-attention")])
def test_galore_without_trained_layers_is_refused(tiny_config, settings):
    with pytest.raises(ConfigError, match="optimizer galore"):
        tiny_config(optimizer="galore", **settings)
