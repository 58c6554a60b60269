"""Record the embedded checkpoint's answers on every song of the data set (by song id: verdict,
score, confidence, themes, decoded as its manifest says, as the service decodes them; no lyrics)
into tests/selah/fixtures/default_predictions.json, which `tests/selah/test_default_checkpoint.py`
compares the checkpoint against. Run it when the shipped checkpoint changes, on purpose, and say
so in the commit.

    PYTHONPATH=. .venv/bin/python scripts/record_default_predictions.py \
        --data ../shared/data/songs.jsonl
"""

import argparse
import json
from pathlib import Path

from selah.analyzers.gptoss import EMBEDDED_CHECKPOINT
from selah.checkpoint import load_checkpoint
from selah.inference import predict_songs
from training.data.readers import read_examples

OUT = Path(__file__).resolve().parents[1] / "tests" / "selah" / "fixtures" / \
    "default_predictions.json"


def main() -> None:
    """Predict every song with the embedded checkpoint and write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the labelled JSONL (songs.jsonl)")
    args = parser.parse_args()
    model, featurizer, manifest, sha = load_checkpoint(EMBEDDED_CHECKPOINT)
    examples, _ = read_examples(args.data)
    predictions = predict_songs(model, featurizer, [e.song() for e in examples], 16,
                                decoding=manifest.get("decoding") or {})  # as the service does
    songs = {e.song_id: {"confidence": round(p["confidence"], 5), "score": round(p["score"], 4),
                         "themes": sorted(n for n, v in p["heads"]["themes"].items() if v >= 0.5),
                         "verdict": p["verdict"]}
             for e, p in zip(examples, predictions)}
    OUT.write_text(json.dumps({"checkpoint_manifest_sha256": sha, "songs": songs}, indent=0,
                              sort_keys=True) + "\n")
    print(f"{len(songs)} songs recorded for checkpoint {sha[:12]} in {OUT}")


if __name__ == "__main__":
    main()
