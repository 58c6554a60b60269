"""The `llm` backend against a scripted chat-completions server on loopback (`http.server` in a
thread): valid and broken answers, retries, timeouts, rate limits, structured-output fallback,
logprobs, chunking and preflight. Every case gives a complete result or `AnalyzerRateLimited`."""

import json
import math
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from selah import schema
from selah.analyzers import BACKENDS, AnalyzerRateLimited, LLMAnalyzer, backend_class
from selah.analyzers.llm_client import retry_after_seconds, safe_url
from selah.analyzers.llm_parse import split_lyrics, verdict_distribution
from tests.selah.analyzers.llm_server import ANSWER, LYRICS, MODEL, completion
from tests.selah.analyzers.test_base import READ_KEYS


@pytest.fixture
def server(llm_server):
    """A fresh scripted server per test (`tests/app/conftest.py`)."""
    return llm_server


def make(server, **settings) -> LLMAnalyzer:
    """An analyzer on `server` with fast retries."""
    analyzer = LLMAnalyzer.from_config({"LLM_API_BASE_URL": server.url, "LLM_MODEL": MODEL,
                                        "LLM_TIMEOUT_SECONDS": 5.0, "LLM_MAX_RETRIES": 1,
                                        **settings})
    analyzer.client.backoff = 0.01
    return analyzer


def assert_complete(result) -> None:
    """Every key callers read, a non-empty explanation and a 0-100 score."""
    for section, key in READ_KEYS:
        assert key in getattr(result, section), (section, key)
    assert result.scoring_results["explanation"].strip()
    assert 0 <= result.get_final_score() <= 100


def test_registered_under_llm():
    assert backend_class("llm") is LLMAnalyzer and BACKENDS["llm"].backend == "llm"


def test_a_valid_answer_becomes_a_result_in_the_schema(server):
    analyzer = make(server, LLM_API_KEY="sk-secret-123")
    result = analyzer.analyze_song("Grace", "Band", LYRICS, user_id=7)
    assert_complete(result)
    assert result.is_successful() and result.user_id == 7
    assert result.get_final_score() == 91.0
    assert [t["theme"] for t in result.get_biblical_themes()] == [
        "God's Love & Grace", "Worship & Adoration"]
    assert result.biblical_analysis["themes"][0]["points"] == 9
    scripture = result.biblical_analysis["supporting_scripture"]
    assert [s["reference"] for s in scripture] == ["Ephesians 2:8"]
    assert scripture[0]["theme"] == "God's Love & Grace"
    framework = result.model_analysis["framework"]
    assert framework["verdict"] == "freely_listen" and framework["recommendation"] == "RECOMMENDED"
    assert framework["verdict_probability_source"] == "stated_confidence"
    assert framework["verdict_probabilities"]["freely_listen"] == 0.8
    assert math.isclose(sum(framework["verdict_probabilities"].values()), 1.0, abs_tol=1e-3)
    assert "theme 'Dragons'" in framework["dropped"]
    assert result.model_analysis["sentiment"]["primary"]["label"] == "positive"
    body = server.posts[0]["body"]
    assert body["model"] == MODEL and body["temperature"] == 0.3 and body["max_tokens"] == 900
    assert body["response_format"]["type"] == "json_schema"
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert server.posts[0]["headers"]["Authorization"] == "Bearer sk-secret-123"
    snapshot = json.dumps([result.configuration_snapshot, analyzer.info()])
    assert "sk-secret-123" not in snapshot and server.url in snapshot and MODEL in snapshot


@pytest.mark.parametrize("verdict, stated, final", [
    ("freely_listen", 70, 85.0), ("avoid_formation", 55, 39.0), ("caution_limit", 45, 45.0),
    ("NOT_RECOMMENDED", 10, 10.0),
])
def test_the_score_is_clamped_into_the_verdicts_band(server, verdict, stated, final):
    server.script((200, {}, completion({**ANSWER, "verdict": verdict, "score": stated})))
    result = make(server).analyze_song("T", "A", LYRICS)
    assert result.get_final_score() == final
    assert result.scoring_results["component_scores"]["model_score"] == stated
    assert schema.verdict_for_score(final) == result.model_analysis["framework"]["verdict"]


def test_concerns_fold_onto_the_catalogue(server):
    concerns = [{"category": "Anger", "severity": "severe", "explanation": "rage"},
                {"category": "Profanity", "severity": "moderate", "explanation": "swearing"},
                {"category": "anger/bitterness", "severity": "low", "explanation": "again"},
                {"category": "Tax Law", "severity": "high", "explanation": "?"}]
    server.script((200, {}, completion({**ANSWER, "verdict": "caution_limit", "score": 50,
                                        "concerns": concerns})))
    result = make(server).analyze_song("T", "A", LYRICS)
    flags = {f["category"]: f["severity"] for f in result.get_content_flags()}
    assert flags == {"Anger/Bitterness": "high", "Profanity": "medium"}
    assert result.content_analysis["total_penalty"] == 3 + 15
    assert result.content_analysis["safety_assessment"]["is_toxic"] is False


@pytest.mark.parametrize("content, message", [
    ("I think this song is lovely!", "not valid JSON"),
    ('{"verdict": "freely_listen", "score": 9', "not valid JSON"),
    ("[1, 2, 3]", "not an object"),
    ({k: v for k, v in ANSWER.items() if k not in ("score", "concerns")},
     "misses required field(s): score, concerns"),
    ({**ANSWER, "verdict": "great"}, "verdict 'great' is not one of"),
    ({**ANSWER, "score": 140}, "score 140 is outside 0-100"),
    ({**ANSWER, "score": "lots"}, "score is not a number"),
    ({**ANSWER, "confidence": True}, "confidence is not a number"),
    ({**ANSWER, "biblical_themes": "grace"}, "biblical_themes is not a list"),
])
def test_an_unusable_answer_is_a_complete_error_result(server, content, message):
    server.script((200, {}, completion(content)))
    result = make(server).analyze_song("T", "A", LYRICS)
    assert_complete(result)
    assert not result.is_successful() and message in result.error_message
    assert result.get_final_score() == 0.0 and result.configuration_snapshot["backend"] == "llm"


def test_a_cut_answer_says_so(server):
    server.script((200, {}, completion('{"verdict": "freely', finish_reason="length")))
    result = make(server, LLM_MAX_TOKENS=5).analyze_song("T", "A", LYRICS)
    assert "cut at LLM_MAX_TOKENS=5" in result.error_message


def test_an_answer_in_fences_is_read(server):
    server.script((200, {}, completion("Here you go:\n```json\n" + json.dumps(ANSWER) + "\n```")))
    assert make(server).analyze_song("T", "A", LYRICS).is_successful()


@pytest.mark.parametrize("header, expected", [({"Retry-After": "7"}, 7.0), ({}, 5.0)])
def test_429_raises_rate_limited_with_retry_after(server, header, expected):
    server.script((429, header, {"error": "slow down"}))
    with pytest.raises(AnalyzerRateLimited) as excinfo:
        make(server).analyze_songs_batch([{"title": "T", "artist": "A", "lyrics": LYRICS}])
    assert excinfo.value.retry_after == expected and len(server.posts) == 1


def test_retry_after_reads_an_http_date():
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= retry_after_seconds(format_datetime(when, usegmt=True)) <= 30
    assert retry_after_seconds("soon") == 5.0


def test_a_5xx_is_retried_then_succeeds(server):
    server.script((500, {}, {"error": "boom"}))
    result = make(server).analyze_song("T", "A", LYRICS)
    assert result.is_successful() and len(server.posts) == 2


def test_a_server_that_keeps_failing_gives_an_error_after_the_retries(server):
    server.script(*[(503, {}, {"error": "busy"})] * 3)
    result = make(server, LLM_MAX_RETRIES=2).analyze_song("T", "A", LYRICS)
    assert_complete(result)
    assert "after 3 attempt(s)" in result.error_message and "HTTP 503" in result.error_message
    assert len(server.posts) == 3


def test_a_slow_reply_times_out_and_is_retried(server):
    server.script((200, {}, completion(ANSWER), 1.5), (200, {}, completion(ANSWER), 1.5))
    started = time.perf_counter()
    result = make(server, LLM_TIMEOUT_SECONDS=0.3).analyze_song("T", "A", LYRICS)
    assert time.perf_counter() - started < 1.5
    assert "no answer within 0.3 s" in result.error_message and len(server.posts) == 2


def test_a_server_that_is_down_gives_an_error_result():
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    analyzer = LLMAnalyzer.from_config({"LLM_API_BASE_URL": f"http://127.0.0.1:{port}/v1",
                                        "LLM_MODEL": MODEL, "LLM_MAX_RETRIES": 1,
                                        "LLM_TIMEOUT_SECONDS": 2.0})
    analyzer.client.backoff = 0.01
    result = analyzer.analyze_song("T", "A", LYRICS)
    assert_complete(result)
    assert "cannot connect" in result.error_message
    ok, message = LLMAnalyzer.preflight_config({"LLM_API_BASE_URL": f"http://127.0.0.1:{port}/v1",
                                                "LLM_MODEL": MODEL, "LLM_MAX_RETRIES": 0})
    assert not ok and "cannot connect" in message


def test_structured_output_falls_back_and_remembers(server):
    def refuse_schemas(body):
        if body.get("response_format", {}).get("type") == "json_schema":
            return 400, {}, {"error": "response_format json_schema not supported"}
        return 200, {}, completion(ANSWER)

    server.script(refuse_schemas, refuse_schemas)
    analyzer = make(server)
    assert analyzer.analyze_song("T", "A", LYRICS).is_successful()
    result = analyzer.analyze_song("T", "A", LYRICS)
    kinds = [r["body"].get("response_format", {}).get("type") for r in server.posts]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert result.model_analysis["framework"]["response_format"] == "json_object"
    assert analyzer.info()["response_format"] == "json_object"


def test_a_server_refusing_every_shape_ends_without_logprobs(server):
    def strict(body):
        if "response_format" in body or "logprobs" in body:
            return 422, {}, {"error": "unsupported"}
        return 200, {}, completion(ANSWER)

    server.script(*[strict] * 4)
    assert make(server).analyze_song("T", "A", LYRICS).is_successful()
    assert len(server.posts) == 4 and "logprobs" not in server.posts[-1]["body"]


def test_a_500_validation_error_steps_down_without_retries(server):
    """llama-cpp-python 0.3.36 answers response_format json_schema with HTTP 500 and a pydantic
    validation error: a refusal of the shape, not a failure to retry."""
    detail = {"error": {"message": "1 validation error: ('body', 'response_format', 'type') "
                                   "Input should be 'text' or 'json_object'"}}
    server.script((500, {}, detail))
    result = make(server).analyze_song("T", "A", LYRICS)
    assert result.is_successful() and len(server.posts) == 2
    assert server.posts[1]["body"]["response_format"]["type"] == "json_object"


def test_a_stated_percentage_confidence_is_read_as_a_fraction(server):
    server.script((200, {}, completion({**ANSWER, "confidence": 85})))
    framework = make(server).analyze_song("T", "A", LYRICS).model_analysis["framework"]
    assert framework["confidence"] == 0.85


def test_an_auth_refusal_is_reported_not_stepped_around(server):
    server.script((401, {}, {"error": "bad key"}))
    result = make(server).analyze_song("T", "A", LYRICS)
    assert "HTTP 401" in result.error_message and len(server.posts) == 1


def tokens_for(text: str, verdict_alternatives: list[tuple[str, float]]) -> list[dict]:
    """Tokens spelling `text`: one token up to the verdict's value, its first token with these
    alternatives, then one token for the rest."""
    start = text.index('"verdict": "') + len('"verdict": "')
    first = verdict_alternatives[0][0]
    alternatives = [{"token": t, "logprob": math.log(p)} for t, p in verdict_alternatives]
    return [{"token": text[:start], "logprob": 0.0, "top_logprobs": []},
            {"token": first, "logprob": alternatives[0]["logprob"],
             "top_logprobs": alternatives},
            {"token": text[start + len(first):], "logprob": 0.0, "top_logprobs": []}]


def test_verdict_probabilities_come_from_logprobs(server):
    text = json.dumps({**ANSWER, "verdict": "context_required", "score": 70})
    tokens = tokens_for(text, [("context", 0.6), ("free", 0.2), ("ca", 0.1), ("xyz", 0.1)])
    server.script((200, {}, completion(text, tokens)))
    framework = make(server).analyze_song("T", "A", LYRICS).model_analysis["framework"]
    assert framework["verdict_probability_source"] == "logprobs"
    probs = framework["verdict_probabilities"]
    # "xyz" begins nothing; avoid_formation, never listed, gets the least listed mass (0.1).
    assert probs == pytest.approx({"freely_listen": 0.2, "context_required": 0.6,
                                   "caution_limit": 0.1, "avoid_formation": 0.1}, abs=1e-4)
    assert framework["confidence"] == pytest.approx(0.6, abs=1e-4)
    assert framework["stated_confidence"] == 0.8


def test_a_token_that_begins_two_verdicts_is_split_and_misaligned_tokens_are_ignored():
    text = '{"verdict": "caution_limit"}'
    probs = verdict_distribution(text, tokens_for(text, [("c", 0.6), ("f", 0.2), ("a", 0.2)]))
    assert probs == pytest.approx({"freely_listen": 0.2, "context_required": 0.3,
                                   "caution_limit": 0.3, "avoid_formation": 0.2})
    assert verdict_distribution(text, [{"token": "{other", "top_logprobs": []}]) is None
    # Constrained, only exact tier-name text counts ("Amazing" cannot begin one); unconstrained,
    # case and plan names count too ("A" begins avoid_formation and ACCEPTABLE).
    alternatives = [("a", 0.3), ("A", 0.5), ("am", 0.2)]
    strict = verdict_distribution(text, tokens_for(text, alternatives))  # only "a" counts
    assert strict == pytest.approx({"freely_listen": 2 / 9, "context_required": 2 / 9,
                                    "caution_limit": 2 / 9, "avoid_formation": 1 / 3})
    loose = verdict_distribution(text, tokens_for(text, alternatives), constrained=False)
    assert loose["avoid_formation"] == loose["context_required"] == pytest.approx(1 / 3)
    # Only the least listed token (the sampled one, listed below the top k) begins a verdict:
    # the logprobs carry no comparison, so there is no distribution (stated confidence is used).
    assert verdict_distribution(text, tokens_for(text, [("a", 0.01), ("The", 0.5)])) is None


def test_split_lyrics_cuts_on_line_boundaries():
    lines = [f"line number {i:02d} of the song" for i in range(12)]
    chunks = split_lyrics("\n".join(lines), 100)
    assert all(len(c) <= 100 for c in chunks) and len(chunks) > 1
    assert "\n".join(chunks).split("\n") == lines
    assert split_lyrics("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]


def test_long_lyrics_are_chunked_and_merged(server):
    answers = [
        {**ANSWER, "verdict": "context_required", "score": 80, "confidence": 0.9,
         "biblical_themes": [{"theme": "Hope", "confidence": 0.4}],
         "concerns": [{"category": "Despair", "severity": "low", "explanation": "dark"}]},
        {**ANSWER, "verdict": "context_required", "score": 60, "confidence": 0.7,
         "biblical_themes": [{"theme": "Hope", "confidence": 0.8}],
         "concerns": [{"category": "Despair", "severity": "high", "explanation": "darker"}]},
    ]
    server.script(*[(200, {}, completion(a)) for a in answers])
    lyrics = "\n".join([f"verse line {i:02d} about the long night" for i in range(8)])
    result = make(server, LLM_CHUNK_CHAR_LIMIT=160).analyze_song("T", "A", lyrics)
    assert len(server.posts) == 2 and "part 1 of 2" in server.posts[0]["body"]["messages"][1][
        "content"]
    assert result.get_final_score() == 70.0
    assert result.get_biblical_themes()[0]["score"] == 0.8
    assert result.get_content_flags()[0]["severity"] == "high"
    framework = result.model_analysis["framework"]
    assert framework["chunks"] == 2 and framework["confidence"] == pytest.approx(0.8)


def test_a_bad_chunk_fails_the_song_naming_it(server):
    server.script((200, {}, completion(ANSWER)), (200, {}, completion("nope")))
    lyrics = "\n".join([f"verse line {i:02d} about the long night" for i in range(8)])
    result = make(server, LLM_CHUNK_CHAR_LIMIT=160).analyze_song("T", "A", lyrics)
    assert result.error_message.startswith("chunk 2 of 2: the answer is not valid JSON")


def test_a_batch_keeps_order_and_length(server):
    songs = [{"title": f"S{i}", "artist": "A", "lyrics": LYRICS} for i in range(5)]
    songs.insert(2, {"title": "Quiet Interlude", "artist": "A", "lyrics": ""})
    server.script((200, {}, completion("garbage")))
    results = make(server, LLM_MAX_CONCURRENCY=2).analyze_songs_batch(songs)
    assert [r.title for r in results] == [s["title"] for s in songs]
    assert results[2].get_quality_level() == "Instrumental"
    assert sum(not r.is_successful() for r in results) == 1 and len(server.posts) == 5
    for result in results:
        assert_complete(result)
    assert make(server).analyze_songs_batch([]) == []


def test_preflight_checks_the_model_is_listed(server):
    settings = {"LLM_API_BASE_URL": server.url, "LLM_MODEL": MODEL}
    ok, message = LLMAnalyzer.preflight_config(settings)
    assert ok and MODEL in message
    server.models = ["other-model"]
    ok, message = LLMAnalyzer.preflight_config(settings)
    assert not ok and "is not served" in message and "other-model" in message


@pytest.mark.parametrize("settings, message", [
    ({"LLM_MODEL": MODEL}, "LLM_API_BASE_URL is not set"),
    ({"LLM_API_BASE_URL": "localhost:8080", "LLM_MODEL": MODEL}, "must start with http"),
    ({"LLM_API_BASE_URL": "http://127.0.0.1:1/v1"}, "LLM_MODEL is not set"),
])
def test_missing_settings_are_named(settings, message):
    ok, said = LLMAnalyzer.preflight_config(settings)
    assert not ok and message in said


def test_from_config_asks_the_server_nothing(server):
    analyzer = make(server)
    assert server.requests == [] and analyzer.model_version == f"llm-{MODEL}"
    assert analyzer.info()["models"] == [MODEL]


def test_safe_url_drops_credentials():
    assert safe_url("http://user:pw@host:8080/v1") == "http://host:8080/v1"
    assert safe_url("http://host/v1") == "http://host/v1"
