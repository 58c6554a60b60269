"""`python -m training.teacher.heads --config FILE`: a classification-head teacher, cross-fitted.

    python -m training.teacher.heads --config training/configs/teacher_heads.yaml

The teacher's second mode, beside the generative one (`training.teacher`, for LLMs that answer in
JSON): each member is a backbone with the student's per-field heads, trained on gold labels by the
distillation loop (`training.distill.loop.Distiller`, any recipe: frozen and cached, top layers,
LoRA), and the members' probabilities averaged are the teacher. Every song's soft label comes from
fits that never saw it:

- fit `K` trains on the non-holdout songs outside fold K and labels fold K's songs, their views
  and the hold-out songs (the hold-out's label is the mean over the N fits);
- fit `J+K` trains outside folds J and K and labels both folds' songs and views, so that the
  student of cross-validation fold K learns fold J's songs from a teacher that saw neither fold J
  nor the fold it is scored on.

Temperatures (`training.teacher.ensemble`) are fitted on out-of-fold songs: for the CV file of
fold K on the fits' predictions of the other folds, for the shipped student's file on all folds.
Writes OUT/fits/MEMBER/FOLDS.pt (logits; a run resumes from those on disk), OUT/labels.jsonl
(train on the non-holdout songs), OUT/labels-foldK.jsonl (CV fold K), OUT/report.json and
OUT/report.md (each fold's and the hold-out's metrics, temperatures, times, peak memory).
"""

import dataclasses
import functools
import json
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import torch

from selah.files import sha256_file
from selah.runtime import peak_rss_mib
from training.config import ConfigError, option, parse_config, save_config
from training.data.readers import assign_splits, read_examples
from training.data.views import parent_id, with_views
from training.distill.config import DistillConfig
from training.distill.features import FeatureStore
from training.distill.loop import Distiller
from training.teacher import ensemble, report, stacking, tfidf

PROG = "python -m training.teacher.heads"


@dataclass
class HeadsTeacherConfig:
    """Settings of a classification-head teacher."""

    data: str | None = option(None, "labelled JSONL file")
    out: str | None = option(None, "output folder: fits/, labels*.jsonl, report.*")
    recipe: str = option("training/configs/student_embedded.yaml",
                         "distillation YAML every member starts from")
    members: list[str] = option([], "members as 'NAME: --flag value ...' (distillation flags "
                                "over the recipe)")
    folds: int = option(5, "cross-fitting folds N (the student's cross-validation folds)",
                        minimum=2, maximum=20)
    views: int = option(2, "augmented views labelled per non-holdout song", minimum=0,
                        maximum=64)
    view_seed: int = option(0, "seed of the labelled views", minimum=0)
    calibrate: bool = option(True, "fit a temperature per head on out-of-fold songs")
    combine: str = option("mean", "how the members make one teacher: mean (then a temperature "
                          "per head) or stack (a linear model per head fitted on songs no member "
                          "fit saw: training.teacher.stacking)", choices=("mean", "stack"))
    tfidf: bool = option(False, "add the lexical member: TF-IDF n-grams under per-field linear "
                         "models (training.teacher.tfidf; needs scikit-learn)")
    feature_cache: str | None = option(None, "folder keeping frozen features across runs")
    mixed_precision: str | None = option(
        None, "every member's autocast dtype, over the members' own flags (no on a CPU without "
        "bf16 instructions, where bf16 autocast is many times slower than float32)",
        choices=("no", "bf16", "fp16"))
    progress: bool = option(True, "show progress bars")

    def validate(self) -> None:
        """Settings that need each other."""
        for name in ("data", "out"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required (--{name})")
        if not self.members:
            raise ConfigError("members is required: one or more 'NAME: --flag value ...'")
        names = [self.member(m)[0] for m in self.members]
        if len(set(names)) != len(names):
            raise ConfigError(f"member names must differ: {names}")
        if self.tfidf and tfidf.NAME in names:
            raise ConfigError(f"member name {tfidf.NAME!r} is the lexical member's (tfidf: true)")

    def member(self, text: str) -> tuple[str, list[str]]:
        """('NAME', [flags]) of a member setting, `mixed_precision` appended when set."""
        name, sep, flags = text.partition(":")
        if not sep or not name.strip() or not name.strip().isidentifier():
            raise ConfigError(f"member {text!r} must read 'NAME: --flag value ...'")
        extra = ["--mixed-precision", self.mixed_precision] if self.mixed_precision else []
        return name.strip(), shlex.split(flags) + extra


def fit_sets(folds: int) -> list[tuple[int, ...]]:
    """Every fold alone, then every pair: the held-out folds of each fit."""
    return [(k,) for k in range(folds)] + list(combinations(range(folds), 2))


def fit_name(held: tuple[int, ...]) -> str:
    """`3` or `1+3`."""
    return "+".join(str(k) for k in held)


class HeadsTeacher:
    """Runs every member's fits (resuming from those on disk) and writes the soft labels."""

    def __init__(self, config: HeadsTeacherConfig, argv: list[str] | None = None):
        self.config = config
        self.argv = argv
        self.out = Path(config.out)
        self.store = FeatureStore(config.feature_cache or self.out / "features")

    def setup(self) -> None:
        """Songs, folds and views; each member's recipe parsed (fails before any training)."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(c, self.out / "config.yaml", self.argv, PROG)
        self.examples, _ = read_examples(c.data)
        self.split = assign_splits(self.examples, c.folds, *self.parse_recipes())
        dev = [e for e in self.examples if self.split[e.song_id] != "holdout"]
        songs, self.views = with_views(dev, c.views, c.view_seed)
        self.songs = songs + [e for e in self.examples if self.split[e.song_id] == "holdout"]
        self.by_id = {e.song_id: e for e in self.songs}

    def parse_recipes(self) -> tuple[float, int]:
        """Each member's DistillConfig into `self.recipes`; the (holdout, split_seed) they share."""
        c = self.config
        self.recipes = {}
        for text in c.members:
            name, flags = c.member(text)
            self.recipes[name] = parse_config(
                DistillConfig, ["--config", c.recipe, *flags, "--data", c.data,
                                "--out", str(self.out / "fits" / name)], f"{PROG} ({name})")
        splits = {(r.holdout, r.split_seed) for r in self.recipes.values()}
        if len(splits) != 1:
            raise ConfigError(f"members must share holdout and split_seed, got {sorted(splits)}")
        # accelerate keeps one state per process: every member runs with the same settings.
        runs = {(r.device, r.mixed_precision) for r in self.recipes.values()}
        if len(runs) != 1:
            raise ConfigError(f"members must share device and mixed_precision, got {sorted(runs)}")
        return splits.pop()

    def fold_of(self, song_id: str) -> str:
        """`fold3` or `holdout` (a view: its song's)."""
        return self.split[parent_id(song_id)]

    def labelled_by(self, held: tuple[int, ...]) -> list:
        """The songs a fit labels: its held-out folds' songs and views (+ hold-out if one fold)."""
        names = {f"fold{k}" for k in held} | ({"holdout"} if len(held) == 1 else set())
        return [e for e in self.songs if self.fold_of(e.song_id) in names]

    def run_fits(self) -> dict:
        """`{member: {held: {song_id: row}, ...}}` of logits, every fit run or read from disk."""
        self.times, self.outputs, self._probs, self._stackers = {}, {}, {}, {}
        fitters = {name: functools.partial(self._fit, recipe)
                   for name, recipe in self.recipes.items()}
        if self.config.tfidf:
            fitters[tfidf.NAME] = self._fit_tfidf
        for name, fit in fitters.items():
            self.outputs[name] = {}
            for held in fit_sets(self.config.folds):
                path = self.out / "fits" / name / f"{fit_name(held)}.pt"
                if not path.is_file():
                    fit(held, path)
                self.outputs[name][held] = torch.load(path, weights_only=True)
            # each fit's own time, kept in its file, so a resumed run reports the work it reuses
            self.times[name] = sum(float(o.get("seconds", 0.0))
                                   for o in self.outputs[name].values())
        return self.outputs

    def _fit_tfidf(self, held: tuple[int, ...], path: Path) -> None:
        """The lexical member's fit: trained on the gold labels of the songs (not views) outside
        the held-out folds and the hold-out, like a neural member's."""
        outside = {f"fold{k}" for k in held} | {"holdout"}
        train = [e for e in self.examples if self.split[e.song_id] not in outside]
        labelled = self.labelled_by(held)
        scored = [e for e in labelled if self.fold_of(e.song_id) in outside - {"holdout"}
                  and e.song_id in self.split]
        path.parent.mkdir(parents=True, exist_ok=True)
        fit = tfidf.run_fit(train, labelled, scored)
        torch.save(fit, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        print(f"{PROG}: fit {tfidf.NAME}/{fit_name(held)}: val accuracy "
              f"{fit['val_metrics']['verdict_accuracy']:.3f}", file=sys.stderr)

    def _fit(self, recipe: DistillConfig, held: tuple[int, ...], path: Path) -> None:
        config = dataclasses.replace(
            recipe, split=f"fold:{fit_name(held)}/{self.config.folds}", save_checkpoints=False,
            out=str(path.with_suffix("")), resume=False, progress=self.config.progress,
            signals_cache=str(self.out / "signals.jsonl"))
        started = time.perf_counter()
        songs = self.labelled_by(held)
        distiller = Distiller(config, self.store, extra=songs)
        summary = distiller.run()
        logits = distiller.logits(songs)
        torch.save({"song_ids": [e.song_id for e in songs], "logits": logits,
                    "val_metrics": summary["last"]["metrics"],
                    "seconds": time.perf_counter() - started}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        print(f"{PROG}: fit {path.parent.name}/{fit_name(held)}: val accuracy "
              f"{summary['last']['metrics']['verdict_accuracy']:.3f}", file=sys.stderr)

    def probs(self, held: tuple[int, ...], context: int | str | None = None
              ) -> dict[str, dict[str, torch.Tensor]]:
        """`{song_id: {head: probs [width]}}` of one fit, its members combined: averaged, or with
        `combine: stack` by the stacker of `context` (`stacker`; ignored for the mean). Computed
        once: every labels file, temperature and report reads the same fits."""
        key = (held, context if self.config.combine == "stack" else None)
        if key not in self._probs:
            ids, members = self._members(held)
            combined = (ensemble.average(members) if key[1] is None
                        else stacking.apply(self.stacker(key[1]), members))
            self._probs[key] = {song: {h: v[i] for h, v in combined.items()}
                                for i, song in enumerate(ids)}
        return self._probs[key]

    def _members(self, held: tuple[int, ...]) -> tuple[list[str], list[dict]]:
        """(song ids, each member's probabilities `{head: [N, width]}`) of one fit."""
        members, ids = [], None
        for name in self.outputs:
            saved = self.outputs[name][held]
            if ids is not None and saved["song_ids"] != ids:
                raise ValueError(f"fit {fit_name(held)} of {name} labels other songs")
            ids = saved["song_ids"]
            members.append(ensemble.probabilities(saved["logits"]))
        return ids, members

    def stacker(self, context: int | str) -> dict:
        """The stacker (`training.teacher.stacking`) of `context`, fitted once on songs (not
        views) that none of the member fits it reads saw: for CV fold K's labels (`context` K),
        fold J's songs from fit J+K for every J != K, so fold K's gold labels reach it through
        nothing; for the shipped student's labels and the hold-out (`"all"`), each fold's songs
        from its own fit."""
        if context not in self._stackers:
            n = self.config.folds
            fits = ([((j,), j) for j in range(n)] if context == "all" else
                    [(tuple(sorted((j, context))), j) for j in range(n) if j != context])
            examples, parts = [], []
            for held, fold in fits:
                ids, members = self._members(held)
                keep = [i for i, song in enumerate(ids)
                        if self.fold_of(song) == f"fold{fold}" and song in self.split]
                examples += [self.by_id[ids[i]] for i in keep]
                parts.append([{h: v[keep] for h, v in m.items()} for m in members])
            joined = [{h: torch.cat([part[m][h] for part in parts]) for h in parts[0][m]}
                      for m in range(len(parts[0]))]
            self._stackers[context] = stacking.fit(joined, examples,
                                                   (*ensemble.LABELLED, "score"))
        return self._stackers[context]

    def holdout(self) -> dict[str, dict]:
        """The hold-out songs' probabilities: the mean over the N single-fold fits."""
        rows: dict[str, list] = {}
        for k in range(self.config.folds):
            for song, value in self.probs((k,), "all").items():
                if self.fold_of(song) == "holdout":
                    rows.setdefault(song, []).append(value)
        return {song: ensemble.average(values) for song, values in rows.items()}

    def oof(self, folds: list[int], context: int | str | None = None) -> dict[str, dict]:
        """Out-of-fold probabilities of the songs (not views) of `folds`, from their own fits
        (combined by the stacker of `context`)."""
        table = {}
        for k in folds:
            for song, value in self.probs((k,), context).items():
                if self.fold_of(song) == f"fold{k}" and song in self.split:
                    table[song] = value
        return table

    def temperatures(self, folds: list[int]) -> dict[str, float]:
        """One temperature per labelled head, fitted on the out-of-fold songs of `folds` (none
        for a stacked teacher: its stackers are fitted to the gold labels already)."""
        if not self.config.calibrate or self.config.combine == "stack":
            return {}
        table = self.oof(folds)
        return {name: ensemble.fit_temperature(*report.gold_rows(name, table, self.by_id))
                for name in ensemble.LABELLED}

    def member_flags(self) -> dict[str, list[str]]:
        """Each member's settings: a neural member's distillation flags; the lexical member's
        models."""
        flags = {name: self.config.member(t)[1]
                 for name, t in zip(self.recipes, self.config.members)}
        if self.config.tfidf:
            flags[tfidf.NAME] = [f"word {tfidf.WORD}", f"char {tfidf.CHAR}", f"C {tfidf.C}",
                                 f"ridge alpha {tfidf.ALPHA}"]
        return flags

    def write(self, path: Path, table: dict[str, dict], sources: dict[str, str],
              temperatures: dict[str, float], purpose: str) -> None:
        """A teacher-labels file: the provenance header, then one record per song."""
        ids = sorted(table)
        stacked = ensemble.calibrate(ensemble.stack(table, ids), temperatures)
        header = {"provenance": {
            "teacher": "heads: " + " + ".join(self.outputs), "mode": "classification heads",
            "members": self.member_flags(),
            "recipe": self.config.recipe, "purpose": purpose, "temperatures": temperatures,
            "combine": self.config.combine,
            "data": self.config.data, "data_sha256": sha256_file(self.config.data),
            "folds": self.config.folds, "views": self.config.views,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
        lines = [json.dumps(header)]
        for row, song in enumerate(ids):
            provenance = {"fit": sources[song]}
            if song in self.views:
                provenance.update(self.views[song].provenance())
            lines.append(json.dumps(ensemble.record(song, stacked, row, provenance)))
        path.with_suffix(".tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
        path.with_suffix(".tmp").replace(path)

    def write_labels(self) -> dict:
        """labels.jsonl and labels-foldK.jsonl; the temperatures of each."""
        n = self.config.folds
        written = {}
        # The shipped student's file: non-holdout songs from their own fold's fit, the hold-out
        # from the mean over the N fits.
        table, sources = {}, {}
        for k in range(n):
            for song, value in self.probs((k,), "all").items():
                if self.fold_of(song) != "holdout":
                    table[song], sources[song] = value, f"fold {k} held out"
        for song, value in self.holdout().items():
            table[song], sources[song] = value, f"mean of the {n} fits (hold-out)"
        temperatures = self.temperatures(list(range(n)))
        self.write(self.out / "labels.jsonl", table, sources, temperatures,
                   "train on the non-holdout songs (split: holdout)")
        written["labels.jsonl"] = temperatures
        for k in range(n):  # CV fold k: fold j's songs from fit j+k; fold k's from fit k
            table, sources = {}, {}
            for j in range(n):
                held = (k,) if j == k else tuple(sorted((j, k)))
                for song, value in self.probs(held, k).items():
                    if self.fold_of(song) == f"fold{j}":
                        table[song], sources[song] = value, f"folds {fit_name(held)} held out"
            temperatures = self.temperatures([j for j in range(n) if j != k])
            self.write(self.out / f"labels-fold{k}.jsonl", table, sources, temperatures,
                       f"cross-validation fold {k} (split: fold:{k}/{n}); fold {k}'s own records "
                       "are for measuring agreement only")
            written[f"labels-fold{k}.jsonl"] = temperatures
        return written

    def run(self) -> dict:
        """Fits, labels and the report."""
        started = time.perf_counter()
        self.setup()
        self.run_fits()
        temperatures = self.write_labels()
        result = report.teacher_report(self, temperatures)
        result.update(wall_seconds=time.perf_counter() - started, member_seconds=self.times,
                      peak_rss_mib=peak_rss_mib())
        (self.out / "report.json").write_text(json.dumps(result, indent=2))
        (self.out / "report.md").write_text(report.markdown(result))
        return result


def main(argv: list[str] | None = None) -> int:
    """`python -m training.teacher.heads --config FILE [--flag value ...]`."""
    config = parse_config(HeadsTeacherConfig, argv, PROG, __doc__.split("\n\n")[0])
    result = HeadsTeacher(config, argv).run()
    print(report.markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
