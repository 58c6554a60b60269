"""`python -m training.pipeline --config FILE`: data, teacher, labels, distill, quantize, evaluate,
export, in order, ending in a report.

    python -m training.pipeline --config training/configs/tiny.yaml --out runs/pipeline-tiny

Each stage runs in a process of its own (so its wall time and peak memory are its own, and the
teacher's memory is returned before the student loads) and leaves a stamp in OUT/stages/ with the
fingerprint of its inputs: its settings, the data file and the stamps of the stages before it. A
stage whose stamp matches is skipped; one that does not runs again, resuming where its own stage
resumes (the teacher and the students from OUT/.../last, the labels from the songs already
written). The YAML has one section per stage, each a stage config's settings, optionally on top
of a stage YAML (`config: FILE`); `data` and the outputs' places are set by the pipeline.

Stages: `data` (counts, splits; with `tiny: true` it also writes a tiny random Qwen3 teacher and
tiny BERT student backbone), `teacher` (`training.teacher.trainer`), `labels`
(`training.labels.soft`), `distill` (`training.distill.loop` with the teacher's labels, and with
`baseline: true` a second student on the gold labels only, for comparison), `quantize`
(`training.quantize.run`: INT8 size and speed), `evaluate` (each student on the hold-out, and its
agreement with the teacher: same verdict and score within 5 points), `export`
(`training.quantize.export` of the better student by verdict macro-F1). The report: OUT/report.json
and OUT/report.md.
"""

import dataclasses
import hashlib
import json
import multiprocessing
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from training.config import ConfigError, check_config, load_yaml, option, parse_config

PROG = "python -m training.pipeline"
STAGES = ("data", "teacher", "labels", "distill", "quantize", "evaluate", "export")


class PipelineError(RuntimeError):
    """A stage failed; the message names it and where its log is."""


@dataclass
class PipelineConfig:
    """Settings of a pipeline run (the stage sections hold the stages' own settings)."""

    data: str | None = option(None, "labelled JSONL file")
    out: str = option("runs/pipeline", "output folder of every stage and the report")
    tiny: bool = option(False, "build a tiny random teacher and student backbone (tests)")
    teacher: dict = option({}, "training.teacher.trainer settings (config: FILE for a base YAML)")
    labels: dict = option({}, "training.labels.soft settings")
    distill: dict = option({}, "training.distill.loop settings (config: FILE for a base YAML)")
    baseline: bool = option(True, "also distil a student on the gold labels only")
    quantize: dict = option({}, "training.quantize.run settings")
    export: dict = option({}, "training.quantize.export settings")
    stages: list[str] = option(list(STAGES), "stages to run, in order (others must be current)")
    progress: bool = option(False, "progress bars inside the stages")

    def validate(self) -> None:
        """Known stages only."""
        unknown = sorted(set(self.stages) - set(STAGES))
        if unknown:
            raise ConfigError(f"unknown stages {', '.join(unknown)}; valid: {', '.join(STAGES)}")


def stage_settings(cls: type, section: dict, forced: dict) -> Any:
    """A stage config: its defaults, then the section's `config` YAML, then the section, then
    what the pipeline sets (`forced`); checked like the stage's own command line."""
    section = dict(section)
    values = load_yaml(section.pop("config")) if section.get("config") else {}
    values.update(section)
    values.update(forced)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown settings {', '.join(unknown)}")
    config = cls(**values)
    check_config(config)
    return config


class Pipeline:
    """Paths, stage configs and fingerprints of one run; `run()` runs the stages."""

    def __init__(self, config: PipelineConfig):
        from selah.files import sha256_file

        if not config.data or not Path(config.data).is_file():
            raise PipelineError(f"data file {config.data} not found; set data")
        self.config = config
        self.out = Path(config.out)
        self.data_sha256 = sha256_file(config.data)
        self.paths = {
            "models": self.out / "models", "teacher": self.out / "teacher",
            "labels": self.out / "labels.jsonl", "student": self.out / "student",
            "student_hard": self.out / "student-hard", "checkpoint": self.out / "checkpoint",
        }

    # -- stage configs ---------------------------------------------------------------------
    def teacher_config(self):
        """The teacher stage's TeacherConfig."""
        from training.teacher.config import TeacherConfig

        forced = {"data": self.config.data, "out": str(self.paths["teacher"]),
                  "progress": self.config.progress}
        if self.config.tiny:
            forced["model"] = str(self.paths["models"] / "teacher")
        return stage_settings(TeacherConfig, self.config.teacher, forced)

    def labels_config(self):
        """The labels stage's LabelsConfig (split settings follow the teacher's)."""
        from training.labels.soft import LabelsConfig

        teacher = self.teacher_config()
        return stage_settings(LabelsConfig, self.config.labels, {
            "data": self.config.data, "teacher": str(self.paths["teacher"] / "final"),
            "out": str(self.paths["labels"]), "holdout": teacher.holdout,
            "split_seed": teacher.split_seed, "progress": self.config.progress})

    def distill_config(self, with_teacher: bool = True):
        """The distill stage's DistillConfig (with or without the teacher's labels)."""
        from training.distill.config import DistillConfig

        forced = {"data": self.config.data, "progress": self.config.progress,
                  "teacher_labels": str(self.paths["labels"]) if with_teacher else None,
                  "out": str(self.paths["student" if with_teacher else "student_hard"])}
        if self.config.tiny:
            forced["backbone"] = str(self.paths["models"] / "student")
        return stage_settings(DistillConfig, self.config.distill, forced)

    def students(self) -> dict[str, Path]:
        """`{name: run folder}` of the students this run trains."""
        students = {"soft": self.paths["student"]}
        if self.config.baseline:
            students["hard"] = self.paths["student_hard"]
        return students

    def stage_inputs(self, name: str) -> dict:
        """What a stage's fingerprint covers (besides the stamps of the stages before it)."""
        c = self.config
        settings = {
            "data": {"tiny": c.tiny},
            "teacher": lambda: dataclasses.asdict(self.teacher_config()),
            "labels": lambda: dataclasses.asdict(self.labels_config()),
            "distill": lambda: {"soft": dataclasses.asdict(self.distill_config(True)),
                                "hard": dataclasses.asdict(self.distill_config(False))
                                if c.baseline else None},
            "quantize": lambda: c.quantize,
            "evaluate": lambda: {},
            "export": lambda: c.export,
        }[name]
        value = settings() if callable(settings) else settings
        return {"stage": name, "data_sha256": self.data_sha256, "settings": value}

    # -- running ---------------------------------------------------------------------------
    def fingerprint(self, name: str) -> str:
        """Digest of a stage's inputs and of the stamps before it."""
        before = [self.read_stamp(s).get("fingerprint") for s in STAGES[:STAGES.index(name)]]
        text = json.dumps([self.stage_inputs(name), before], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def stamp_path(self, name: str) -> Path:
        """Where a stage's stamp lives."""
        return self.out / "stages" / f"{name}.json"

    def read_stamp(self, name: str) -> dict:
        """A stage's stamp ({} when it has none)."""
        path = self.stamp_path(name)
        return json.loads(path.read_text()) if path.is_file() else {}

    def run(self) -> dict:
        """Run or skip each stage in order; the report."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "stages").mkdir(exist_ok=True)
        statuses = {}
        for name in STAGES:
            fingerprint = self.fingerprint(name)
            stamp = self.read_stamp(name)
            if stamp.get("fingerprint") == fingerprint:
                statuses[name] = "skipped (current)"
                continue
            if name not in self.config.stages:
                raise PipelineError(f"stage {name} is not current and not in stages; add it")
            print(f"pipeline: {name} ...", file=sys.stderr, flush=True)
            run_stage_process(self.config, name, fingerprint)
            statuses[name] = "ran"
        return write_report(self, statuses)


# -- the stages (each runs in its own process) ------------------------------------------------
def stage_data(p: Pipeline) -> dict:
    """Counts and splits of the data; with `tiny`, the tiny teacher and student backbone."""
    from training.data.readers import holdout_split, read_examples

    examples, report = read_examples(p.config.data)
    teacher = p.teacher_config()
    development, holdout = holdout_split(examples, teacher.holdout, teacher.split_seed)
    if p.config.tiny:
        from training.tiny import write_tiny_bert, write_tiny_teacher

        texts = [f"{e.title}\n{e.artist}\n{e.lyrics}" for e in examples]
        write_tiny_teacher(p.paths["models"] / "teacher", texts)
        write_tiny_bert(p.paths["models"] / "student")
    return {"songs": len(examples), "development": len(development), "holdout": len(holdout),
            "skipped_lines": getattr(report, "skipped", 0)}


def stage_teacher(p: Pipeline) -> dict:
    """GaLore fine-tuning of the teacher."""
    from training.teacher.trainer import TeacherTrainer

    summary = TeacherTrainer(p.teacher_config()).run()
    last = summary["history"][-1] if summary["history"] else {}
    return {"global_step": summary["global_step"], "train_songs": summary["n_train_songs"],
            **{k: last.get(k) for k in ("train_loss", "val_loss", "val_verdict_accuracy",
                                        "val_verdict_macro_f1")}}


def stage_labels(p: Pipeline) -> dict:
    """The teacher's soft labels for every song."""
    from training.labels.soft import run

    summary = run(p.labels_config())
    return {k: v for k, v in summary.items() if k not in ("out", "peak_rss_mib")}


def stage_distill(p: Pipeline) -> dict:
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


def stage_quantize(p: Pipeline) -> dict:
    """INT8 size and forward time of the soft-label student."""
    from training.quantize.run import QuantizeConfig, run

    config = stage_settings(QuantizeConfig, p.config.quantize,
                            {"student": str(p.paths["student"] / "best"), "out": None})
    return run(config)


def stage_evaluate(p: Pipeline) -> dict:
    """Each student's hold-out metrics, and its agreement with the teacher on the hold-out songs
    the teacher labelled: same verdict, and (when the labels carry scores) scores within 5."""
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
    split = p.teacher_config()
    _, holdout = holdout_split(examples, split.holdout, split.split_seed)
    labelled = [i for i, e in enumerate(holdout) if e.song_id in teacher_rows]
    rows = [teacher_rows[holdout[i].song_id] for i in labelled]
    gold = [holdout[i].label.verdict for i in labelled]
    t_verdicts = [r["labels"]["verdict"] for r in rows]
    figures = {"holdout_songs": len(holdout), "teacher_labelled_holdout_songs": len(labelled),
               "teacher": {"verdict_accuracy": metrics.accuracy(gold, t_verdicts),
                           "verdict_macro_f1": metrics.macro_f1(gold, t_verdicts)}}
    if all("score" in r for r in rows):
        figures["teacher"]["score_mae"] = metrics.mae(
            [float(holdout[i].label.score) for i in labelled], [r["score"] for r in rows])
    for name, folder in p.students().items():
        model, featurizer, _ = load_student(folder / "best")
        predictions = predict_songs(model, featurizer, [e.song() for e in holdout])
        result = evaluate_predictions(holdout, predictions)
        s_verdicts = [predictions[i]["verdict"] for i in labelled]
        result["teacher_verdict_agreement"] = metrics.accuracy(t_verdicts, s_verdicts)
        if all("score" in r for r in rows):
            result["teacher_agreement"] = metrics.agreement(
                t_verdicts, s_verdicts, [r["score"] for r in rows],
                [predictions[i]["score"] for i in labelled])
        figures[name] = result
    figures["chosen"] = max(p.students(), key=lambda n: figures[n]["verdict_macro_f1"])
    return figures


def stage_export(p: Pipeline) -> dict:
    """The chosen student as the INT8 checkpoint the service loads."""
    from training.quantize.export import ExportConfig, export

    chosen = p.read_stamp("evaluate")["figures"]["chosen"]
    folder = p.students()[chosen] / "best"
    config = stage_settings(ExportConfig, p.config.export, {
        "student": str(folder), "data": p.config.data, "out": str(p.paths["checkpoint"])})
    manifest = export(config)
    return {"student": chosen, "checkpoint": str(p.paths["checkpoint"]),
            "model_id": manifest["model_id"], "agreement": manifest["agreement"],
            "sizes": {k: manifest["sizes"][k] for k in ("float_bytes", "int8_bytes", "ratio")}}


STAGE_FUNCTIONS: dict[str, Callable[[Pipeline], dict]] = {
    "data": stage_data, "teacher": stage_teacher, "labels": stage_labels,
    "distill": stage_distill, "quantize": stage_quantize, "evaluate": stage_evaluate,
    "export": stage_export,
}


def _stage_process(config: PipelineConfig, name: str, fingerprint: str) -> None:
    """Body of a stage's process: run it, then write its stamp (figures, time, peak memory)."""
    from selah.runtime import peak_rss_mib

    pipeline = Pipeline(config)
    started = time.perf_counter()
    try:
        figures = STAGE_FUNCTIONS[name](pipeline)
    except BaseException:
        traceback.print_exc()
        raise SystemExit(1)
    stamp = {"stage": name, "fingerprint": fingerprint, "figures": figures,
             "wall_seconds": round(time.perf_counter() - started, 1),
             "peak_rss_mib": peak_rss_mib(),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = pipeline.stamp_path(name)
    path.with_suffix(".tmp").write_text(json.dumps(stamp, indent=2, default=str))
    path.with_suffix(".tmp").replace(path)


def run_stage_process(config: PipelineConfig, name: str, fingerprint: str) -> None:
    """Run one stage in a fresh process; PipelineError when it fails."""
    process = multiprocessing.get_context("spawn").Process(
        target=_stage_process, args=(config, name, fingerprint), name=f"stage-{name}")
    process.start()
    process.join()
    if process.exitcode != 0:
        raise PipelineError(f"stage {name} failed (exit {process.exitcode}); see the traceback "
                            f"above. Fix it and rerun: finished stages are skipped")


def write_report(p: Pipeline, statuses: dict) -> dict:
    """OUT/report.json and OUT/report.md: every stage's status, time, memory and figures."""
    stages = {name: {"status": statuses.get(name), **p.read_stamp(name)} for name in STAGES}
    report = {"config": dataclasses.asdict(p.config), "stages": stages}
    (p.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    lines = ["# Pipeline report", "", f"Data: `{p.config.data}` (sha256 {p.data_sha256[:12]})", "",
             "| stage | status | wall s | peak RSS MiB |", "|---|---|---:|---:|"]
    for name, stage in stages.items():
        lines.append(f"| {name} | {stage['status']} | {stage.get('wall_seconds')} | "
                     f"{stage.get('peak_rss_mib')} |")
    for name, stage in stages.items():
        lines += ["", f"## {name}", "", "```json",
                  json.dumps(stage.get("figures"), indent=2, default=str), "```"]
    (p.out / "report.md").write_text("\n".join(lines) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m training.pipeline --config FILE [--out DIR]`."""
    config = parse_config(PipelineConfig, argv, PROG, __doc__.split("\n\n")[0])
    try:
        report = Pipeline(config).run()
    except (PipelineError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({n: {k: s.get(k) for k in ("status", "wall_seconds", "peak_rss_mib")}
                      for n, s in report["stages"].items()}, indent=2))
    print(f"report: {Path(config.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
