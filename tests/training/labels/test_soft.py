"""The teacher's soft labels: exact candidate probabilities, constrained greedy fields, resume."""

import json

import pytest
import torch
import torch.nn.functional as F

from tests.training.paths import SONGS
from training.distill.targets import read_teacher_labels
from training.labels.scoring import Cursor
from training.labels.soft import Labeller, LabelsConfig, LabelsError, run, song_hash
from training.teacher import prompts as fmt
from training.teacher.model import load_causal_lm


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    model, tokenizer = load_causal_lm(str(tiny_teacher))
    return model.eval(), fmt.Encoder(tokenizer, max_length=448, answer_reserve=96)


def brute_force_logprob(model, prefix: list[int], continuation: list[int]) -> float:
    """log p(continuation | prefix) from one uncached forward pass over the whole sequence."""
    ids = torch.tensor([prefix + continuation])
    with torch.no_grad():
        logprobs = F.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return sum(float(logprobs[len(prefix) - 1 + t, token]) for t, token in enumerate(continuation))


def test_soft_labels_equal_brute_force_sequence_probabilities(teacher, songs):
    model, encoder = teacher
    ids = encoder.ids
    for song in songs[:3]:
        record = Labeller(model, encoder, temperature=2.0, score=False).label(song)
        prefix = encoder.prompts(song.title, song.artist, song.lyrics)[0] + ids(fmt.OPEN)
        for name, _, written, labels in fmt.CATEGORICAL:
            after = ids(fmt.literal_after(name))
            brute = [brute_force_logprob(model, prefix, ids(v) + after) for v in written]
            expected = torch.softmax(torch.tensor(brute) / 2.0, dim=0).tolist()
            for label, logit, p in zip(labels, brute, expected):
                assert record["teacher_logits"][name][label] == pytest.approx(logit, abs=1e-3)
                assert record["teacher_probs"][name][label] == pytest.approx(p, abs=1e-4)
            chosen = written[labels.index(record["labels"][name])]
            assert record["labels"][name] == labels[max(range(len(brute)), key=brute.__getitem__)]
            prefix = prefix + ids(chosen) + after  # teacher-forced on its own choice


def test_constrained_choice_is_the_stepwise_greedy_path(teacher):
    model, encoder = teacher
    prefix = encoder.prompts("T", "A", "la la la")[0]
    candidates = [encoder.ids(str(n)) + encoder.ids(fmt.AFTER_SCORE) for n in range(101)]
    cursor = Cursor(model, prefix)
    index = cursor.choose(candidates)
    alive, sequence = list(range(101)), []
    while len(alive) > 1:  # brute force: argmax over allowed next tokens, full forward each time
        position = len(sequence)
        allowed = sorted({candidates[i][position] for i in alive})
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prefix + sequence])).logits[0, -1]
        token = max(allowed, key=lambda t: float(logits[t]))
        sequence.append(token)
        alive = [i for i in alive if candidates[i][position] == token]
    assert index == alive[0]
    assert cursor.length == len(prefix) + len(candidates[index])  # the whole choice was fed


def test_records_follow_the_schema_and_read_as_teacher_labels(teacher, songs, tmp_path):
    model, encoder = teacher
    labeller = Labeller(model, encoder, score=True, lists=True, max_items=3)
    path = tmp_path / "labels.jsonl"
    records = [labeller.label(song) for song in songs[:2]]
    path.write_text(json.dumps({"provenance": {"teacher": "tiny"}}) + "\n" +
                    "".join(json.dumps(r) + "\n" for r in records))
    parsed = read_teacher_labels(path)
    for record in records:
        assert 0 <= record["score"] <= 100 and len(record["labels"]["themes"]) <= 3
        assert len(set(record["labels"]["themes"])) == len(record["labels"]["themes"])
        assert record["confidence"] == max(record["teacher_probs"]["verdict"].values())
        assert parsed.records[record["song_id"]]["score"] == record["score"]


def test_chunked_songs_average_their_windows(teacher, songs):
    model, _ = teacher
    chunks = fmt.Encoder(teacher[1].tokenizer, max_length=448, answer_reserve=96,
                         window="chunks", stride=8)
    song = songs[0]
    long_song = type(song)(**{**song.__dict__, "lyrics": "\n".join([song.lyrics] * 12)})
    record = Labeller(model, chunks, score=False).label(long_song)
    assert record["windows"] > 1
    assert sum(record["teacher_probs"]["verdict"].values()) == pytest.approx(1.0, abs=1e-5)


def test_a_rerun_skips_labelled_songs_and_another_setup_is_refused(tiny_teacher, tmp_path):
    def config(**overrides):
        values = dict(data=str(SONGS), teacher=str(tiny_teacher), out=str(tmp_path / "l.jsonl"),
                      max_length=448, answer_reserve=96, window="head", stride=8,
                      lists=False, device="cpu", progress=False, num_threads=1)
        values.update(overrides)
        return LabelsConfig(**values)

    first = run(config(max_songs=4))
    assert first["labelled"] == 4 and first["skipped"] == 0
    second = run(config())
    assert second["labelled"] == 8 and second["skipped"] == 4
    lines = (tmp_path / "l.jsonl").read_text().splitlines()
    assert "provenance" in json.loads(lines[0])
    hashes = [json.loads(line)["song_hash"] for line in lines[1:]]
    assert len(hashes) == len(set(hashes)) == 12
    from training.data.readers import read_examples

    assert set(hashes) == {song_hash(e) for e in read_examples(SONGS)[0]}
    provenance = json.loads(lines[0])["provenance"]
    assert provenance["teacher_sha256"] and provenance["chat_template_sha256"]
    assert provenance["temperature"] == 1.0 and provenance["date_pin"] == "2025-08-05"
    with pytest.raises(LabelsError, match="temperature"):
        run(config(temperature=2.0))
