"""The pipeline's stages (`training.pipeline`), each a function of the `Pipeline` that returns
its figures; `_stage_process` runs each in a process of its own.

With `teacher_mode: heads` the teacher stage is `training.teacher.heads` (cross-fitted soft labels,
calibrated, with views: it writes the labels itself, so the labels stage only counts them), and
the `crossval` stage (`crossval: true`) scores the distilled student on each fold's teacher file
and the same recipe on the gold labels over the teacher's folds, every figure per fold and as the
mean, beside the teacher's own out-of-fold figures.
"""

import json
from typing import Callable

from training.config import stage_settings


def stage_data(p) -> dict:
    """Counts and splits of the data; with `tiny`, the tiny teacher and student backbone."""
    from training.data.readers import holdout_split, read_examples

    examples, report = read_examples(p.config.data)
    development, holdout = holdout_split(examples, *p.split())
    if p.config.tiny:
        from training.tiny import write_tiny_bert, write_tiny_teacher

        texts = [f"{e.title}\n{e.artist}\n{e.lyrics}" for e in examples]
        write_tiny_teacher(p.paths["models"] / "teacher", texts)
        write_tiny_bert(p.paths["models"] / "student")
    return {"songs": len(examples), "development": len(development), "holdout": len(holdout),
            "skipped_lines": getattr(report, "skipped", 0)}


def stage_teacher(p) -> dict:
    """GaLore fine-tuning of the generative teacher, or the cross-fitted heads teacher."""
    if p.heads:
        from training.teacher.heads import HeadsTeacher

        result = HeadsTeacher(p.teacher_config()).run()
        return {k: result[k] for k in ("members", "folds", "per_fold", "mean", "mean_uncalibrated",
                                       "holdout", "temperatures", "member_fold_accuracy",
                                       "member_seconds")}
    from training.teacher.trainer import TeacherTrainer

    summary = TeacherTrainer(p.teacher_config()).run()
    last = summary["history"][-1] if summary["history"] else {}
    return {"global_step": summary["global_step"], "train_songs": summary["n_train_songs"],
            **{k: last.get(k) for k in ("train_loss", "val_loss", "val_verdict_accuracy",
                                        "val_verdict_macro_f1")}}


def stage_labels(p) -> dict:
    """The teacher's soft labels for every song (a heads teacher's: counted, already written)."""
    if p.heads:
        lines = p.paths["labels"].read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines[1:] if line.strip()]
        return {"labelled": len(records),
                "views": sum("view_of" in r.get("provenance", {}) for r in records),
                "written_by": json.loads(lines[0])["provenance"]["teacher"]}
    from training.labels.soft import run

    summary = run(p.labels_config())
    return {k: v for k, v in summary.items() if k not in ("out", "peak_rss_mib")}


def stage_distill(p) -> dict:
    """The student on the teacher's labels (and the gold-only baseline)."""
    from training.distill.loop import Distiller

    figures = {}
    for name, with_teacher in (("soft", True), ("hard", False)):
        if name == "hard" and not p.config.baseline:
            continue
        summary = Distiller(p.distill_config(with_teacher)).run()
        best = summary["best"] or {}
        figures[name] = {"train_seconds_per_epoch": summary["train_seconds_per_epoch"],
                         "best_epoch": best.get("epoch"), "metrics": best.get("metrics")}
    return figures


def stage_crossval(p) -> dict:
    """The distilled and the gold-label student over the teacher's folds: every fold's figures
    (the distilled run's carry the teacher's and the agreements) and their means."""
    from training.distill.crossval import run_crossval

    figures = {}
    for name, (config, recipe) in p.crossval_configs().items():
        report = run_crossval(config, recipe)
        figures[name] = {"per_fold": [{"fold": f["fold"], **f["figures"]}
                                      for f in report["per_fold"]],
                         "mean": report["mean_figures"], "wall_seconds": report["wall_seconds"],
                         "train_seconds_per_epoch": [f["train_seconds_per_epoch"]
                                                     for f in report["per_fold"]]}
    return figures


def crossval_table(figures: dict, evaluate: dict, teacher: dict) -> list[str]:
    """The crossval stage as Markdown: per fold and as the mean, the teacher (its out-of-fold
    songs), the distilled student (with its agreement with the teacher) and the gold-label one;
    then the hold-out's students from the evaluate stage."""
    from training.distill.crossval import figures_row

    header = ["| who | accuracy | macro-F1 | MAE | Pearson | theme F1 | concern F1 | ECE | "
              "recall free / context / caution / avoid | teacher accuracy | agreement verdict / "
              "plan / kappa |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines = ["", "## Cross-validation over the teacher's folds", "", *header]
    distilled, gold = figures["distilled"], figures["gold"]
    rows = [(f"fold {d['fold']}", d, g) for d, g in zip(distilled["per_fold"], gold["per_fold"])]
    rows.append(("**mean**", distilled["mean"], gold["mean"]))
    for name, d, g in rows:
        lines += [figures_row(f"{name} teacher", {"student": d["teacher"]}),
                  figures_row(f"{name} distilled", d), figures_row(f"{name} gold", g)]
    held = evaluate.get("figures") or {}
    if held.get("soft"):
        lines += ["", f"Hold-out ({held['holdout_songs']} songs; the students decoded with "
                  f"{held['decoding']}; the teacher: the mean of its fits, from the teacher "
                  "stage):", "", *header]
        if teacher.get("holdout"):
            lines.append(figures_row("teacher", {"student": teacher["holdout"]}))
        for name, label in (("soft", "distilled"), ("hard", "gold")):
            if held.get(name):
                student = held[name]
                agreement = {"verdict": student["teacher_verdict_agreement"],
                             "plan": student.get("teacher_agreement"),
                             "kappa": student["teacher_kappa"]}
                lines.append(figures_row(label, {"student": student, "agreement": agreement,
                                                 "teacher": held["teacher"]}))
    return lines


def stage_quantize(p) -> dict:
    """INT8 size and forward time of the soft-label student."""
    from training.quantize.run import QuantizeConfig, run

    config = stage_settings(QuantizeConfig, p.config.quantize,
                            {"student": str(p.paths["student"] / "best"), "out": None})
    return run(config)


def teacher_verdict(record: dict) -> str:
    """A labels record's verdict: the generative teacher's answer, or a heads teacher's most
    probable class."""
    if "labels" in record:
        return record["labels"]["verdict"]
    probs = record["teacher_probs"]["verdict"]
    return max(probs, key=probs.get)


def stage_evaluate(p) -> dict:
    """Each student's hold-out metrics (decoded as its checkpoint will be: `decoding`), and its
    agreement with the teacher on the hold-out songs the teacher labelled: same verdict, and
    (when the labels carry scores) scores within 5."""
    from selah.inference import predict_songs
    from selah.student import load_student
    from training.data.readers import holdout_split, read_examples
    from training.evaluate import metrics
    from training.evaluate.metrics import evaluate_predictions

    examples, _ = read_examples(p.config.data)
    teacher_rows = {}
    for line in p.paths["labels"].read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            record = json.loads(line)
            teacher_rows[record["song_id"]] = record
    _, holdout = holdout_split(examples, *p.split())
    labelled = [i for i, e in enumerate(holdout) if e.song_id in teacher_rows]
    rows = [teacher_rows[holdout[i].song_id] for i in labelled]
    gold = [holdout[i].label.verdict for i in labelled]
    t_verdicts = [teacher_verdict(r) for r in rows]
    figures = {"holdout_songs": len(holdout), "teacher_labelled_holdout_songs": len(labelled),
               "decoding": p.config.decoding,
               "teacher": {"verdict_accuracy": metrics.accuracy(gold, t_verdicts),
                           "verdict_macro_f1": metrics.macro_f1(gold, t_verdicts)}}
    if all("score" in r for r in rows):
        figures["teacher"]["score_mae"] = metrics.mae(
            [float(holdout[i].label.score) for i in labelled], [r["score"] for r in rows])
    for name, folder in p.students().items():
        model, featurizer, _ = load_student(folder / "best")
        path = p.decoding_file(name)
        decoding = json.loads(path.read_text()) if path else None
        predictions = predict_songs(model, featurizer, [e.song() for e in holdout],
                                    decoding=decoding)
        result = {**evaluate_predictions(holdout, predictions),
                  **metrics.evaluate_fields(holdout, predictions)}
        s_verdicts = [predictions[i]["verdict"] for i in labelled]
        result["teacher_verdict_agreement"] = metrics.accuracy(t_verdicts, s_verdicts)
        result["teacher_kappa"] = metrics.cohen_kappa(t_verdicts, s_verdicts)
        if all("score" in r for r in rows):
            result["teacher_agreement"] = metrics.agreement(
                t_verdicts, s_verdicts, [r["score"] for r in rows],
                [predictions[i]["score"] for i in labelled])
        figures[name] = result
    # With cross-validation the students' CV mean macro-F1 chooses (832 songs, and the hold-out
    # stays a confirmation); without it, the hold-out's.
    crossval = p.read_stamp("crossval").get("figures") if p.config.crossval else None
    if crossval:
        from training.pipeline import CROSSVAL_NAMES

        figures["chosen_by"] = "crossval mean verdict macro-F1"
        figures["chosen"] = max(p.students(), key=lambda n: crossval[CROSSVAL_NAMES[n]]["mean"]
                                ["student"]["verdict_macro_f1"])
    else:
        figures["chosen"] = max(p.students(), key=lambda n: figures[n]["verdict_macro_f1"])
    return figures


def stage_export(p) -> dict:
    """The chosen student as the INT8 checkpoint the service loads."""
    from training.quantize.export import ExportConfig, export

    chosen = p.read_stamp("evaluate")["figures"]["chosen"]
    folder = p.students()[chosen] / "best"
    forced = {"student": str(folder), "data": p.config.data, "out": str(p.paths["checkpoint"])}
    if p.decoding_file(chosen):
        forced["decoding"] = str(p.decoding_file(chosen))
    config = stage_settings(ExportConfig, p.config.export, forced)
    manifest = export(config)
    return {"student": chosen, "checkpoint": str(p.paths["checkpoint"]),
            "model_id": manifest["model_id"], "agreement": manifest["agreement"],
            "sizes": {k: manifest["sizes"][k] for k in ("float_bytes", "int8_bytes", "ratio")}}


STAGE_FUNCTIONS: dict[str, Callable] = {
    "data": stage_data, "teacher": stage_teacher, "labels": stage_labels,
    "distill": stage_distill, "crossval": stage_crossval, "quantize": stage_quantize,
    "evaluate": stage_evaluate, "export": stage_export,
}
