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
(`training.quantize.export` of the better student by verdict macro-F1: the crossval stage's
mean when it ran, else the hold-out's). The report: OUT/report.json
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

from training.config import ConfigError, check_config, option, parse_config, stage_settings

PROG = "python -m training.pipeline"
STAGES = ("data", "teacher", "labels", "distill", "crossval", "quantize", "evaluate", "export")
TEACHER_MODES = ("generative", "heads")
# decoding -> the file the crossval stage fits it into (argmax: none)
DECODINGS = {"argmax": None, "temperature": "decoding-temperature.json",
             "joint": "decoding.json", "conditional": "decoding-conditional.json"}
CROSSVAL_NAMES = {"soft": "distilled", "hard": "gold"}  # student -> its crossval run


class PipelineError(RuntimeError):
    """A stage failed; the message names it and where its log is."""


@dataclass
class PipelineConfig:
    """Settings of a pipeline run (the stage sections hold the stages' own settings)."""

    data: str | None = option(None, "labelled JSONL file")
    out: str = option("runs/pipeline", "output folder of every stage and the report")
    tiny: bool = option(False, "build a tiny random teacher and student backbone (tests)")
    teacher_mode: str = option("generative", "generative (training.teacher.trainer, then the "
                               "labels stage) or heads (training.teacher.heads: cross-fitted, "
                               "writes its own labels)", choices=TEACHER_MODES)
    teacher: dict = option({}, "the teacher's settings (config: FILE for a base YAML)")
    labels: dict = option({}, "training.labels.soft settings (generative teacher)")
    distill: dict = option({}, "training.distill.loop settings (config: FILE for a base YAML)")
    baseline: bool = option(True, "also distil a student on the gold labels only")
    crossval: bool = option(False, "cross-validate the distilled and gold-label students over "
                            "the heads teacher's folds (teacher_mode: heads)")
    decoding: str = option("argmax", "what the exported checkpoint decodes with, fitted on the "
                           "crossval stage's folds (training.distill.decoding): argmax, "
                           "temperature, joint or conditional", choices=DECODINGS)
    quantize: dict = option({}, "training.quantize.run settings")
    export: dict = option({}, "training.quantize.export settings")
    stages: list[str] = option(list(STAGES), "stages to run, in order (others must be current)")
    progress: bool = option(False, "progress bars inside the stages")

    def validate(self) -> None:
        """Known stages only; cross-validation needs the cross-fitted teacher."""
        unknown = sorted(set(self.stages) - set(STAGES))
        if unknown:
            raise ConfigError(f"unknown stages {', '.join(unknown)}; valid: {', '.join(STAGES)}")
        if self.decoding != "argmax" and not self.crossval:
            raise ConfigError(f"decoding {self.decoding} is fitted on the crossval stage's folds: "
                              "set crossval: true")
        if self.crossval and self.teacher_mode != "heads":
            raise ConfigError("crossval needs teacher_mode: heads (its labels-foldK.jsonl files "
                              "keep every fold's songs from the teacher that scored them)")


class Pipeline:
    """Paths, stage configs and fingerprints of one run; `run()` runs the stages."""

    def __init__(self, config: PipelineConfig):
        from selah.files import sha256_file

        if not config.data or not Path(config.data).is_file():
            raise PipelineError(f"data file {config.data} not found; set data")
        self.config = config
        self.heads = config.teacher_mode == "heads"
        self.out = Path(config.out)
        self.data_sha256 = sha256_file(config.data)
        teacher = self.out / "teacher"
        self.paths = {
            "models": self.out / "models", "teacher": teacher,
            "labels": teacher / "labels.jsonl" if self.heads else self.out / "labels.jsonl",
            "student": self.out / "student", "student_hard": self.out / "student-hard",
            "checkpoint": self.out / "checkpoint", "crossval": self.out / "crossval",
        }

    def active_stages(self) -> tuple[str, ...]:
        """The stages of this run, in order (crossval only when asked for)."""
        return tuple(s for s in STAGES if s != "crossval" or self.config.crossval)

    # -- stage configs ---------------------------------------------------------------------
    def teacher_config(self):
        """The teacher stage's TeacherConfig, or HeadsTeacherConfig (teacher_mode: heads)."""
        forced = {"data": self.config.data, "out": str(self.paths["teacher"]),
                  "progress": self.config.progress}
        if self.heads:
            from training.teacher.heads import HeadsTeacherConfig

            config = stage_settings(HeadsTeacherConfig, self.config.teacher, forced)
            if self.config.tiny:  # every member on the tiny random backbone
                backbone = self.paths["models"] / "student"
                config.members = [f"{m} --backbone {backbone}" for m in config.members]
            return config
        from training.teacher.config import TeacherConfig

        if self.config.tiny:
            forced["model"] = str(self.paths["models"] / "teacher")
        return stage_settings(TeacherConfig, self.config.teacher, forced)

    def split(self) -> tuple[float, int]:
        """(holdout, split_seed) of the teacher, which every stage shares."""
        teacher = self.teacher_config()
        if self.heads:
            from training.teacher.heads import HeadsTeacher

            return HeadsTeacher(teacher).parse_recipes()
        return teacher.holdout, teacher.split_seed

    def labels_config(self):
        """The labels stage's LabelsConfig (split settings follow the teacher's)."""
        from training.labels.soft import LabelsConfig

        if self.heads:
            raise ConfigError("a heads teacher writes its own labels: no labels stage settings")
        holdout, split_seed = self.split()
        return stage_settings(LabelsConfig, self.config.labels, {
            "data": self.config.data, "teacher": str(self.paths["teacher"] / "final"),
            "out": str(self.paths["labels"]), "holdout": holdout,
            "split_seed": split_seed, "progress": self.config.progress})

    def distill_config(self, with_teacher: bool = True, teacher_labels: str | None = None):
        """The distill stage's DistillConfig (with or without the teacher's labels; another
        labels file for cross-validation)."""
        from training.distill.config import DistillConfig

        labels = teacher_labels or str(self.paths["labels"])
        forced = {"data": self.config.data, "progress": self.config.progress,
                  "teacher_labels": labels if with_teacher else None,
                  "out": str(self.paths["student" if with_teacher else "student_hard"])}
        if self.config.tiny:
            forced["backbone"] = str(self.paths["models"] / "student")
        config = stage_settings(DistillConfig, self.config.distill, forced)
        if self.heads:
            split = self.split()  # parses every member's recipe: once
            if (config.holdout, config.split_seed) != split:
                raise ConfigError("the students' holdout and split_seed must be the teacher "
                                  f"recipe's {split}, got {(config.holdout, config.split_seed)}")
            if config.split != "holdout":
                raise ConfigError("with a heads teacher the students train on the non-holdout "
                                  f"songs (split: holdout), got {config.split}")
        return config

    def crossval_configs(self) -> dict:
        """`{name: (CrossvalConfig, recipe)}`: the distilled student on each fold's teacher file
        (`labels-fold{fold}.jsonl`), and the same recipe on the gold labels."""
        from training.distill.crossval import CrossvalConfig

        folds = self.teacher_config().folds
        per_fold = str(self.paths["teacher"] / "labels-fold{fold}.jsonl")
        runs = {}
        for name, with_teacher in (("distilled", True), ("gold", False)):
            recipe = self.distill_config(with_teacher, per_fold)
            recipe.out = str(self.paths["crossval"] / name / "fold0")
            config = CrossvalConfig(folds=folds, out=str(self.paths["crossval"] / name),
                                    baseline=False)
            check_config(config)
            runs[name] = (config, recipe)
        return runs

    def decoding_file(self, student: str) -> Path | None:
        """The decoding the export ships for a student (`soft`, `hard`), fitted by crossval."""
        name = DECODINGS[self.config.decoding]
        return self.paths["crossval"] / CROSSVAL_NAMES[student] / name if name else None

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
            "teacher": lambda: {"mode": c.teacher_mode,
                                **dataclasses.asdict(self.teacher_config())},
            "labels": lambda: ({"written by": "the heads teacher"} if self.heads
                               else dataclasses.asdict(self.labels_config())),
            "distill": lambda: {"soft": dataclasses.asdict(self.distill_config(True)),
                                "hard": dataclasses.asdict(self.distill_config(False))
                                if c.baseline else None},
            "crossval": lambda: {name: [dataclasses.asdict(x) for x in run]
                                 for name, run in self.crossval_configs().items()},
            "quantize": lambda: c.quantize,
            "evaluate": lambda: {"decoding": c.decoding},
            "export": lambda: {**c.export, "decoding": c.decoding},
        }[name]
        value = settings() if callable(settings) else settings
        return {"stage": name, "data_sha256": self.data_sha256, "settings": value}

    # -- running ---------------------------------------------------------------------------
    def fingerprint(self, name: str) -> str:
        """Digest of a stage's inputs and of the stamps before it."""
        stages = self.active_stages()
        before = [self.read_stamp(s).get("fingerprint") for s in stages[:stages.index(name)]]
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
        for name in self.active_stages():
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


def _stage_process(config: PipelineConfig, name: str, fingerprint: str) -> None:
    """Body of a stage's process: run it, then write its stamp (figures, time, peak memory)."""
    from selah.runtime import peak_rss_mib
    from training.stages import STAGE_FUNCTIONS

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
    stages = {name: {"status": statuses.get(name), **p.read_stamp(name)}
              for name in p.active_stages()}
    report = {"config": dataclasses.asdict(p.config), "stages": stages}
    (p.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    lines = ["# Pipeline report", "", f"Data: `{p.config.data}` (sha256 {p.data_sha256[:12]})", "",
             "| stage | status | wall s | peak RSS MiB |", "|---|---|---:|---:|"]
    for name, stage in stages.items():
        lines.append(f"| {name} | {stage['status']} | {stage.get('wall_seconds')} | "
                     f"{stage.get('peak_rss_mib')} |")
    if stages.get("crossval", {}).get("figures"):
        from training.stages import crossval_table

        lines += crossval_table(stages["crossval"]["figures"], stages.get("evaluate", {}),
                                stages["teacher"].get("figures") or {})
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
