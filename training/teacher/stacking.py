"""Members combined by a learned linear model per head instead of a plain mean (stacked
generalisation: Wolpert, 1992, "Stacked Generalization"; Breiman, 1996, "Stacked Regressions").

The mean gives a weak member the vote of a strong one; a stacker learns how far to trust each,
and is fitted on songs that none of the members it reads saw, so what it learns is how the
members err on new songs (`training.teacher.heads` picks those songs: see `combine: stack`
there). Per head, over M members:

- categorical: multinomial logistic regression on the members' log-probabilities concatenated
  ([N, M * width] -> [N, width]), started from their mean, with an L2 pull towards that start;
- multilabel: one weight per member and one bias for the whole head on the members' logits
  (logit = sum_m w_m logit_m + b): rare items (most themes have a few dozen songs) get no
  weights of their own to overfit, and the fit calibrates as a temperature would;
- score: least squares on the members' scores plus a bias (ridge towards the mean);
- anything else (the concern severities, which no gold label in a teacher file scores): the
  members' mean.

A stacker's outputs are probabilities already fitted to gold labels, so no temperature follows.
"""

from typing import Sequence

import torch

from training.teacher.ensemble import EPS, SPECS, average, gold_targets, logit

L2 = 1e-2  # pull of the weights towards the mean, per song (the loss is a mean over songs)
STEPS = 100


def _minimise(params: list[torch.Tensor], loss_fn) -> None:
    optimizer = torch.optim.LBFGS(params, max_iter=STEPS, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimizer.step(closure)


def _fit_categorical(inputs: torch.Tensor, target: torch.Tensor, members: int, width: int):
    start = torch.eye(width).repeat(members, 1) / members  # the mean of the log-probabilities
    weight = start.clone().requires_grad_(True)
    bias = torch.zeros(width, requires_grad=True)
    _minimise([weight, bias], lambda: torch.nn.functional.cross_entropy(
        inputs @ weight + bias, target) + L2 * (weight - start).pow(2).sum())
    return {"weight": weight.detach(), "bias": bias.detach()}


def _fit_multilabel(inputs: torch.Tensor, target: torch.Tensor, members: int):
    weight = torch.full((members,), 1.0 / members, requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    start = weight.detach().clone()
    _minimise([weight, bias], lambda: torch.nn.functional.binary_cross_entropy_with_logits(
        torch.einsum("mnk,m->nk", inputs, weight) + bias, target)
        + L2 * (weight - start).pow(2).sum())
    return {"weight": weight.detach(), "bias": bias.detach()}


def _fit_score(inputs: torch.Tensor, target: torch.Tensor, members: int):
    design = torch.cat([inputs, torch.ones(len(inputs), 1)], 1).double()
    start = torch.tensor([1.0 / members] * members + [0.0], dtype=torch.float64)
    penalty = L2 * len(inputs) * torch.eye(members + 1, dtype=torch.float64)
    penalty[-1, -1] = 0.0  # the bias is free
    solution = torch.linalg.solve(design.T @ design + penalty,
                                  design.T @ target.double() + penalty @ start)
    return {"weight": solution[:-1].float(), "bias": solution[-1:].float()}


def _inputs(name: str, members: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    kind = SPECS[name].kind
    if name == "score":
        return torch.stack([m[name][:, 0] for m in members], 1)
    if kind == "categorical":
        return torch.cat([m[name].clamp(min=EPS).log() for m in members], 1)
    return torch.stack([logit(m[name]) for m in members])


def fit(members: Sequence[dict[str, torch.Tensor]], examples: Sequence,
        heads: Sequence[str]) -> dict[str, dict]:
    """A stacker `{head: params}` for `heads` from the members' probabilities of `examples`
    (`{head: [N, width]}` each, rows in `examples`' order, as `ensemble.probabilities` gives)."""
    stacker = {}
    for name in heads:
        rows, target = gold_targets(name, examples)
        if not rows:
            continue
        chosen = [{name: m[name][rows]} for m in members]
        inputs, kind = _inputs(name, chosen), SPECS[name].kind
        if name == "score":
            stacker[name] = _fit_score(inputs, target, len(members))
        elif kind == "categorical":
            stacker[name] = _fit_categorical(inputs, target, len(members), SPECS[name].width)
        else:
            stacker[name] = _fit_multilabel(inputs, target, len(members))
    return stacker


def apply(stacker: dict[str, dict], members: Sequence[dict[str, torch.Tensor]]
          ) -> dict[str, torch.Tensor]:
    """The combined probabilities `{head: [N, width]}`: the stacked heads from `stacker`, every
    other head the members' mean."""
    combined = average(members)
    for name, params in stacker.items():
        inputs, kind = _inputs(name, members), SPECS[name].kind
        if name == "score":
            combined[name] = (inputs @ params["weight"] + params["bias"]).clamp(0, 100)[:, None]
        elif kind == "categorical":
            combined[name] = (inputs @ params["weight"] + params["bias"]).softmax(-1)
        else:
            combined[name] = (torch.einsum("mnk,m->nk", inputs, params["weight"])
                              + params["bias"]).sigmoid()
    return combined


def describe(stacker: dict[str, dict]) -> dict[str, list[float]]:
    """Each member's weight per head, for a report: the sum of its block (categorical) or its
    coefficient (multilabel, score)."""
    out = {}
    for name, params in stacker.items():
        weight = params["weight"]
        if SPECS[name].kind == "categorical":
            width = SPECS[name].width
            weight = torch.stack([weight[m * width:(m + 1) * width].diagonal().mean()
                                  for m in range(len(weight) // width)])
        out[name] = [round(float(w), 3) for w in weight]
    return out
