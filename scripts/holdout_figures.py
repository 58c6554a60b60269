"""Hold-out figures of float student folders: every figure of training.evaluate.metrics, and the
agreement with a teacher-labels file's hold-out records (verdict; plan's; kappa).

    PYTHONPATH=. .venv/bin/python scripts/holdout_figures.py runs/holdout/A/best runs/holdout/B/best
    PYTHONPATH=. .venv/bin/python scripts/holdout_figures.py --teacher T/labels.jsonl runs/holdout/A/best

`--teacher` names the labels file to measure agreement with (default: TEACHER below).
"""

import json
import sys

from selah.inference import predict_songs
from selah.schema import VERDICTS, score_band
from selah.student import load_student
from training.data.readers import holdout_split, read_examples
from training.distill.targets import read_teacher_labels
from training.evaluate import metrics

DATA = "../shared/data/songs.jsonl"
TEACHER = "runs/teacher-heads/labels.jsonl"


def main(folders: list[str], teacher_file: str = TEACHER) -> int:
    """Print one JSON line of figures per student folder."""
    examples, _ = read_examples(DATA)
    holdout = holdout_split(examples)[1]
    teacher = read_teacher_labels(teacher_file).records
    verdicts = [max(VERDICTS, key=teacher[e.song_id]["verdict"].get) for e in holdout]
    scores = [min(max(teacher[e.song_id]["score"], score_band(v)[0]), score_band(v)[1])
              for v, e in zip(verdicts, holdout)]
    for folder in folders:
        model, featurizer, _ = load_student(folder)
        preds = predict_songs(model, featurizer, [e.song() for e in holdout])
        figures = {**metrics.evaluate_predictions(holdout, preds),
                   **metrics.evaluate_fields(holdout, preds)}
        mine, points = [p["verdict"] for p in preds], [p["score"] for p in preds]
        figures["agreement"] = {"verdict": metrics.accuracy(verdicts, mine),
                                "plan": metrics.agreement(verdicts, mine, scores, points),
                                "kappa": metrics.cohen_kappa(verdicts, mine)}
        print(folder, json.dumps(figures))
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--teacher"]:
        raise SystemExit(main(args[2:], args[1]))
    raise SystemExit(main(args))
