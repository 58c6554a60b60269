"""The student's decoding fitted on out-of-fold songs: verdict temperature and joint verdict/score.

`selah.inference.decode_logits` takes a `decoding` of `verdict_temperature` T and `score_sigma`
sigma. Both are fitted here on validation logits of cross-validation folds, never on the songs they
are scored on:

- sigma: the root mean square of (raw score - gold score) over the fitting songs (the score head
  read as a Gaussian measurement of the song's score);
- T: the temperature of the grid `training.teacher.ensemble.TEMPERATURES` whose joint posterior
  has the least negative log-likelihood of the gold verdicts.

`study` scores each fold with a decoding fitted on the other folds, beside today's argmax and
clamping: the verdict temperature alone, the joint decoding, and the conditional one (the verdict
tempered and argmaxed as the head gives it, the score the Gaussian's mean inside its band:
`score_mode: conditional`, the same verdicts as argmax with no score pinned to a band edge); `fit`
fits one on every fold (what `training.quantize.export --decoding` ships).
"""

import statistics

import torch

from selah.inference import band_interval, decode_logits
from selah.schema import VERDICTS, score_band
from selah.student import HEAD_SPECS
from training.evaluate import metrics
from training.teacher.ensemble import TEMPERATURES

FIGURES = ("verdict_accuracy", "verdict_macro_f1", "score_mae", "ece", "pinned")
VARIANTS = ("argmax", "temperature", "joint", "conditional")


def band_mass(raw: torch.Tensor, sigma: float) -> torch.Tensor:
    """P(S in band(v)) [N, 4] for S ~ N(raw, sigma^2), verdicts in `VERDICTS` order (float64)."""
    normal = torch.distributions.Normal(raw.double()[:, None], sigma)
    lows, highs = zip(*(band_interval(v) for v in VERDICTS))
    return (normal.cdf(torch.tensor(highs, dtype=torch.float64))
            - normal.cdf(torch.tensor(lows, dtype=torch.float64)))


def fit(logits: dict[str, torch.Tensor], examples: list, joint: bool = True) -> dict:
    """`{verdict_temperature, score_sigma, songs}` fitted on these songs' logits (the search is
    vectorised; `selah.inference.joint_decode` computes the same posterior song by song);
    `joint=False`: the temperature of the verdict head alone, and no sigma."""
    raw = logits["score"][:, 0].double().sigmoid() * 100.0
    gold = torch.tensor([e.label.score for e in examples], dtype=torch.float64)
    sigma = max(float(((raw - gold) ** 2).mean().sqrt()), 0.5)
    mass = band_mass(raw, sigma) if joint else torch.ones(len(raw), len(VERDICTS),
                                                          dtype=torch.float64)
    truth = torch.tensor([VERDICTS.index(e.label.verdict) for e in examples])
    verdict = logits["verdict"].double()
    losses = []
    for t in TEMPERATURES:
        weights = (verdict / float(t)).softmax(-1) * mass
        q = weights / weights.sum(-1, keepdim=True).clamp(min=1e-300)
        losses.append(float(-q.gather(1, truth[:, None]).clamp(min=1e-9).log().mean()))
    temperature = float(TEMPERATURES[min(range(len(losses)), key=losses.__getitem__)])
    fitted = {"verdict_temperature": round(temperature, 4), "songs": len(examples)}
    return {**fitted, "score_sigma": round(sigma, 3)} if joint else fitted


def score(predictions: list[dict], examples: list) -> dict:
    """Accuracy, macro-F1, score MAE, ECE, per-class recall and the share of scores on a band
    edge (the clamp's pinning)."""
    result = metrics.evaluate_predictions(examples, predictions)
    result.update(metrics.evaluate_fields(examples, predictions))
    result["pinned"] = statistics.fmean(float(p["score"]) in map(float, score_band(p["verdict"]))
                                        for p in predictions)
    return result


def _join(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def study(folds: list[tuple[dict[str, torch.Tensor], list]]) -> dict:
    """Per fold (validation logits, songs): argmax/clamp, the temperature alone, and the joint
    decoding, each fitted on the other folds; and the decoding fitted on every fold."""
    rows = []
    for k, (logits, examples) in enumerate(folds):
        others = [f for j, f in enumerate(folds) if j != k]
        logits_others, songs_others = _join([f[0] for f in others]), [e for f in others
                                                                      for e in f[1]]
        fitted = fit(logits_others, songs_others)
        tempered = fit(logits_others, songs_others, joint=False)
        variants = {"argmax": None, "temperature": tempered, "joint": fitted,
                    "conditional": conditional_of(tempered, fitted)}
        rows.append({"fold": k, "fitted": fitted,
                     **{name: score(decode_logits(logits, HEAD_SPECS, decoding), examples)
                        for name, decoding in variants.items()}})
    mean = {name: {figure: statistics.fmean(r[name][figure] for r in rows) for figure in FIGURES}
            for name in VARIANTS}
    for name in mean:
        mean[name]["recall"] = {v: statistics.fmean(r[name]["recall"].get(v, 0.0) for r in rows)
                                for v in VERDICTS}
    joined, songs = _join([f[0] for f in folds]), [e for f in folds for e in f[1]]
    everything, tempered = fit(joined, songs), fit(joined, songs, joint=False)
    return {"per_fold": rows, "mean": mean, "decoding": everything,
            "conditional": conditional_of(tempered, everything), "temperature": tempered}


def conditional_of(tempered: dict, joint: dict) -> dict:
    """The conditional decoding: the verdict head's own temperature, the joint fit's sigma."""
    return {**tempered, "score_sigma": joint["score_sigma"], "score_mode": "conditional"}


def files(result: dict) -> dict[str, dict]:
    """`{file name: decoding}` of a study's decodings fitted on every fold, one per variant that
    needs one (argmax needs none): what `training.quantize.export --decoding` reads."""
    return {"decoding.json": result["decoding"],
            "decoding-conditional.json": result["conditional"],
            "decoding-temperature.json": result["temperature"]}


def markdown(result: dict) -> list[str]:
    """The study as Markdown lines (crossval.md's last section)."""
    lines = ["", "Decoding, each fold scored with T and sigma fitted on the other folds "
             "(temperature: the verdict head's own T; joint: T of the joint posterior; "
             "conditional: the head's verdict, the score's mean inside its band):", "",
             "| decoding | accuracy | macro-F1 | MAE | ECE | scores on a band edge | recall "
             "free / context / caution / avoid |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, values in result["mean"].items():
        recall = " / ".join(f"{values['recall'][v]:.2f}" for v in VERDICTS)
        lines.append(f"| {name} | {values['verdict_accuracy']:.3f} | "
                     f"{values['verdict_macro_f1']:.3f} | {values['score_mae']:.2f} | "
                     f"{values['ece']:.3f} | {values['pinned']:.1%} | {recall} |")
    fitted, conditional = result["decoding"], result["conditional"]
    lines += ["", f"Fitted on all {fitted['songs']} validation songs (decoding.json): T = "
              f"{fitted['verdict_temperature']:.2f}, sigma = {fitted['score_sigma']:.2f}; "
              f"conditional (decoding-conditional.json): T = "
              f"{conditional['verdict_temperature']:.2f}, sigma = "
              f"{conditional['score_sigma']:.2f}."]
    return lines
