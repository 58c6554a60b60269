"""Soft labels from a served teacher, against the scripted chat-completions server of the `llm`
backend's tests: first-token value distributions, the soft-labels file format, resume, fallback."""

import json
import math

import pytest

from tests.selah.analyzers.llm_server import ScriptedServer, completion
from tests.training.paths import SONGS
from training.distill.targets import read_teacher_labels
from training.labels.served import ServedLabelsConfig, run, value_distribution
from training.labels.soft import LabelsError

# The answer as segments: a plain piece, or (first token of a value, its alternatives).
SEGMENTS = [
    '{"verdict": "', ("free", [("free", 0.7), ("con", 0.2), ("ca", 0.1)]),
    'ly_listen", "formation_risk": "', ("low", [("low", 0.9), ("high", 0.1)]),
    '", "narrative_voice": "', ("artist", [("artist", 0.6), ("God", 0.3), ("The", 0.1)]),
    '", "lament_filter_applied": ', ("false", [("false", 0.8), ("true", 0.2)]),
    ', "score": 90, "themes": ["Worship & Adoration", "Dragons"], "concerns": []}',
]


def answer_reply(segments=SEGMENTS) -> dict:
    """A completion whose logprobs spell the answer, with alternatives at each value."""
    tokens = []
    for segment in segments:
        piece, alternatives = (segment, []) if isinstance(segment, str) else segment
        tokens.append({"token": piece, "logprob": 0.0, "top_logprobs": [
            {"token": t, "logprob": math.log(p)} for t, p in alternatives]})
    return completion("".join(t["token"] for t in tokens), tokens)


@pytest.fixture
def server():
    scripted = ScriptedServer()
    scripted.script(*[(200, {}, answer_reply())] * 20)
    yield scripted
    scripted.close()


def config(server, out, **overrides) -> ServedLabelsConfig:
    settings = {"max_songs": 3, **overrides}
    return ServedLabelsConfig(data=str(SONGS), out=str(out), base_url=server.url,
                              model="scripted-model", progress=False, **settings)


def test_value_distributions_from_first_token_logprobs():
    reply = answer_reply()
    text = reply["choices"][0]["message"]["content"]
    tokens = reply["choices"][0]["logprobs"]["content"]
    verdict = value_distribution(text, tokens, "verdict", ("freely_listen", "context_required",
                                                           "caution_limit", "avoid_formation"))
    assert verdict[0] == pytest.approx([0.7 / 1.1, 0.2 / 1.1, 0.1 / 1.1, 0.1 / 1.1])
    assert verdict[1] is True
    lament = value_distribution(text, tokens, "lament_filter_applied", ("false", "true"))
    assert lament[0] == pytest.approx([0.8, 0.2])
    lone = [{"token": '{"verdict": "', "top_logprobs": []},
            {"token": "c", "top_logprobs": [{"token": "The", "logprob": -1.0},
                                            {"token": "c", "logprob": -9.0}]}]
    assert value_distribution('{"verdict": "c', lone, "verdict", ("a", "c")) == ([0.5, 0.5],
                                                                                   False)
    assert value_distribution(text, tokens, "missing_key", ("a", "b")) is None
    assert value_distribution(text, [{"token": "nope"}], "verdict", ("a",)) is None


def test_run_writes_soft_labels_the_distill_stage_reads(server, tmp_path):
    out = tmp_path / "served.jsonl"
    summary = run(config(server, out, temperature=2.0))
    assert (summary["labelled"], summary["failed"]) == (3, 0)
    lines = out.read_text().splitlines()
    header = json.loads(lines[0])["provenance"]
    assert header["format"] == "selah-teacher-labels-1" and header["source"] == "served"
    record = json.loads(lines[1])
    assert record["labels"]["verdict"] == "freely_listen" and record["score"] == 90
    assert record["labels"]["themes"] == ["Worship & Adoration"]
    assert record["uninformative"] == []
    logits = record["teacher_logits"]["verdict"]
    assert logits["freely_listen"] == pytest.approx(math.log(0.7 / 1.1), abs=1e-4)
    expected = [math.exp(v / 2.0) for v in logits.values()]
    assert record["teacher_probs"]["verdict"]["freely_listen"] == pytest.approx(
        expected[0] / sum(expected), abs=1e-5)
    assert record["teacher_probs"]["lament_filter"] == pytest.approx(
        {"not_applied": 0.8 ** 0.5 / (0.8 ** 0.5 + 0.2 ** 0.5),
         "applied": 0.2 ** 0.5 / (0.8 ** 0.5 + 0.2 ** 0.5)}, abs=1e-5)
    body = server.posts[0]["body"]
    assert body["logprobs"] is True and body["response_format"]["type"] == "json_schema"
    read_teacher_labels(out)  # the distill stage accepts the file


def test_a_rerun_resumes_by_song_hash_and_refuses_another_teacher(server, tmp_path):
    out = tmp_path / "served.jsonl"
    run(config(server, out))
    summary = run(config(server, out, max_songs=5))
    assert (summary["labelled"], summary["skipped"]) == (2, 3) and len(server.posts) == 5
    with pytest.raises(LabelsError, match="another teacher or setup"):
        run(ServedLabelsConfig(data=str(SONGS), out=str(out), base_url=server.url,
                               model="other-model", progress=False))


def test_an_unreadable_answer_is_reported_and_retried_next_run(tmp_path):
    scripted = ScriptedServer()
    try:
        scripted.script((200, {}, completion("no JSON here")), (200, {}, answer_reply()),
                        (200, {}, answer_reply()), (200, {}, answer_reply()))
        out = tmp_path / "served.jsonl"
        first = run(config(scripted, out))
        assert (first["labelled"], first["failed"]) == (2, 1)
        assert "no logprobs for verdict in the answer" in next(iter(first["failures"].values()))
        assert run(config(scripted, out))["labelled"] == 1
    finally:
        scripted.close()


def test_a_refused_json_schema_steps_down_to_json_object(tmp_path):
    scripted = ScriptedServer()
    try:
        refusal = {"error": {"message": "1 validation error: response_format.type"}}
        scripted.script((500, {}, refusal), *[(200, {}, answer_reply())] * 3)
        summary = run(config(scripted, tmp_path / "served.jsonl"))
        kinds = [p["body"]["response_format"]["type"] for p in scripted.posts]
        assert summary["labelled"] == 3 and kinds == ["json_schema"] + ["json_object"] * 3
    finally:
        scripted.close()
