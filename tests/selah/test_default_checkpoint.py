"""The shipped checkpoint answers exactly as it did before the model core moved into `selah`.

`fixtures/default_predictions.json` holds, for every song of the shared data set (by song id: no
lyrics), the verdict, score, confidence and themes that the pre-refactor code (training.manifest
+ training.inference at commit dcc455d) gave with the checkpoint in `app/checkpoints/default`.
"""

import json
from pathlib import Path

import pytest

from app.services.analyzers.gptoss import EMBEDDED_CHECKPOINT
from selah.checkpoint import load_checkpoint
from selah.inference import predict_songs
from training.data.readers import read_examples

RECORDED = Path(__file__).resolve().parent / "fixtures" / "default_predictions.json"


@pytest.mark.data
@pytest.mark.slow
def test_the_default_checkpoint_predicts_every_song_as_recorded(shared_songs):
    recorded = json.loads(RECORDED.read_text())
    model, featurizer, _, sha = load_checkpoint(EMBEDDED_CHECKPOINT)
    assert sha == recorded["checkpoint_manifest_sha256"]
    examples, _ = read_examples(shared_songs)
    assert {e.song_id for e in examples} == set(recorded["songs"])
    predictions = predict_songs(model, featurizer, [e.song() for e in examples], 16)
    changed = []
    for example, prediction in zip(examples, predictions):
        expected = recorded["songs"][example.song_id]
        themes = sorted(n for n, p in prediction["heads"]["themes"].items() if p >= 0.5)
        if (prediction["verdict"] != expected["verdict"] or themes != expected["themes"]
                or abs(prediction["score"] - expected["score"]) > 1e-3
                or abs(prediction["confidence"] - expected["confidence"]) > 1e-4):
            changed.append(example.song_id)
    assert changed == [], f"{len(changed)} of {len(examples)} songs changed"
