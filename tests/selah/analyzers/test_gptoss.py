"""The gptoss analyzer on a real (tiny, random) INT8 checkpoint: loading, refusals, the contract."""

import hashlib
import json
import shutil

import pytest

from selah import schema
from selah.analyzers import AnalyzerUnavailable, GPTOSSChristianAnalyzer
from selah.analyzers.columns import legacy_columns
from selah.analyzers.gptoss_render import scripture_for
from selah.scripture_topics import references_for
from tests.checkpoints import corrupt
from tests.selah.analyzers.test_base import READ_KEYS

SONGS = [
    {"title": "Morning Mercy", "artist": "Test Band",
     "lyrics": "When the morning breaks I lift my eyes\nYour mercy new with every sunrise\n" * 6},
    {"title": "Grey Road", "artist": "Test Band",
     "lyrics": "I keep on walking through the long grey rain and the road keeps on turning"},
    {"title": "Short", "artist": "Test Band", "lyrics": "la la la!"},
    {"title": "Interlude", "artist": "Test Band", "lyrics": ""},
]


def config(path, **settings):
    """Settings for the analyzer at `path`."""
    return {"GPTOSS_MODEL_PATH": str(path), "GPTOSS_DEVICE": "cpu", "GPTOSS_BATCH_SIZE": 2,
            **settings}


@pytest.fixture(scope="module")
def analyzer(int8_checkpoint):
    """The analyzer on the session's checkpoint (loaded once for this module)."""
    return GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint))


@pytest.fixture
def checkpoint_copy(int8_checkpoint, tmp_path):
    """A copy of the checkpoint that a test may damage."""
    return shutil.copytree(int8_checkpoint, tmp_path / "ckpt")


def _stable(result) -> dict:
    """A result's JSON without what legitimately varies between calls (time)."""
    data = result.to_dict()
    data.pop("timestamp"), data.pop("processing_time")
    return data


def test_preflight_checks_without_loading(int8_checkpoint, tmp_path):
    ok, message = GPTOSSChristianAnalyzer.preflight_config(config(int8_checkpoint))
    assert ok and "ready to load on cpu" in message
    ok, message = GPTOSSChristianAnalyzer.preflight_config(config(tmp_path))
    assert not ok and "manifest.json is missing" in message and "GPTOSS_MODEL_PATH" in message


@pytest.mark.parametrize("device, reason", [
    ("tpu", "GPTOSS_DEVICE='tpu' is not one of auto, cpu, cuda, mps"),
    ("cuda", "GPTOSS_DEVICE=cuda, but torch"),
])
def test_an_unavailable_device_fails_fast(int8_checkpoint, device, reason):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ok, message = GPTOSSChristianAnalyzer.preflight_config(
        config(int8_checkpoint, GPTOSS_DEVICE=device))
    assert not ok and reason in message
    with pytest.raises(AnalyzerUnavailable, match="GPTOSS_DEVICE"):
        GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint, GPTOSS_DEVICE=device))


def test_version_and_snapshot_come_from_the_manifest(analyzer, int8_checkpoint):
    sha = hashlib.sha256((int8_checkpoint / "manifest.json").read_bytes()).hexdigest()
    assert analyzer.model_version == "gptoss-" + sha[:12]
    snapshot = analyzer.analyze_song(**SONGS[0]).configuration_snapshot
    assert snapshot["backend"] == "gptoss" and snapshot["checkpoint_sha256"] == sha
    assert snapshot["model_id"] == "selah-tiny-random-bert-int8" and snapshot["device"] == "cpu"
    assert snapshot["quantization"] == analyzer.manifest["quantization"]["method"]
    assert snapshot["quantization"] in ("int8-w8a8-dynamic-per-token", "int8-weight-only")
    assert snapshot["schema_version"] == schema.SCHEMA_VERSION
    assert analyzer.info()["models"] == [f"selah-tiny-random-bert-int8 ({analyzer.model_version})"]


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "MODEL_CARD.md"])
def test_a_corrupted_file_is_refused_by_name(checkpoint_copy, name):
    corrupt(checkpoint_copy / name)
    with pytest.raises(AnalyzerUnavailable, match=rf"{name}: SHA-256 does not match manifest"):
        GPTOSSChristianAnalyzer.from_config(config(checkpoint_copy))


def test_a_missing_file_or_bad_manifest_is_refused(checkpoint_copy):
    (checkpoint_copy / "tokenizer.json").unlink()
    ok, message = GPTOSSChristianAnalyzer.preflight_config(config(checkpoint_copy))
    assert not ok and "tokenizer.json is missing" in message
    manifest = json.loads((checkpoint_copy / "manifest.json").read_text())
    (checkpoint_copy / "manifest.json").write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(AnalyzerUnavailable, match="format 'other' is not"):
        GPTOSSChristianAnalyzer.from_config(config(checkpoint_copy))


def test_every_key_callers_read_is_present_and_typed(analyzer):
    result = analyzer.analyze_song(**SONGS[0])
    assert result.is_successful(), result.error_message
    data = result.to_dict()
    for section, key in READ_KEYS:
        assert key in data[section], f"{section}.{key}"
    scoring, biblical = result.scoring_results, result.biblical_analysis
    content, model = result.content_analysis, result.model_analysis
    assert isinstance(scoring["final_score"], float) and 0 <= scoring["final_score"] <= 100
    assert isinstance(scoring["explanation"], str) and scoring["explanation"].strip()
    assert scoring["quality_level"] in ("Very Low", "Low", "Medium", "High")
    assert isinstance(scoring["component_scores"], dict)
    assert isinstance(scoring["verdict_summary"], str) and scoring["verdict_summary"]
    assert isinstance(scoring["formation_guidance"], str) and scoring["formation_guidance"]
    assert isinstance(scoring["theological_weighting"], float)
    assert isinstance(scoring["formational_penalty"], float)
    for theme in biblical["themes"]:
        assert set(theme) >= {"theme", "score", "category", "points", "detection_method"}
        assert 0 <= theme["score"] <= 1 and isinstance(theme["points"], int)
        assert theme["category"] in schema.THEME_CATEGORIES
        assert (theme["points"] < 0) == (theme["category"] == "negative")
    assert biblical["biblical_themes_count"] == len(biblical["themes"])
    for item in biblical["supporting_scripture"]:
        assert set(item) >= {"reference", "text", "theme", "source"}
        assert item["source"] in ("quoted", "theme") and isinstance(item["theme"], str)
        assert item["text"] is None or isinstance(item["text"], str)
    for flag in content["concern_flags"]:
        assert set(flag) >= {"type", "category", "severity", "confidence", "description"}
        assert flag["category"] in schema.CONCERN_CATEGORIES
        assert flag["severity"] in schema.SEVERITIES and 0 <= flag["confidence"] <= 1
    assert isinstance(content["safety_assessment"], dict)
    assert isinstance(content["total_penalty"], (int, float))
    assert content["concern_level"] in ("very_low", "low", "medium", "high")
    for key, labels in (("sentiment", schema.SENTIMENT_LABELS), ("emotions", schema.EMOTION_LABELS),
                        ("content_safety", schema.SAFETY_LABELS)):
        assert [s["label"] for s in model[key]["scores"]] == list(labels)
        assert abs(sum(s["score"] for s in model[key]["scores"]) - 1) < 1e-3
        assert model[key]["primary"]["label"] in labels
    assert isinstance(model["content_safety"]["is_toxic"], bool)
    framework = model["framework"]
    assert set(framework) >= {"verdict", "recommendation", "verdict_probabilities",
                              "formation_risk", "narrative_voice", "lament_filter_applied",
                              "confidence", "needs_review"}
    assert framework["recommendation"] == schema.PLAN_NAMES[framework["verdict"]]
    assert framework["formation_risk"] in schema.FORMATION_RISKS
    assert framework["narrative_voice"] in schema.NARRATIVE_VOICES
    assert isinstance(framework["lament_filter_applied"], bool)
    assert set(framework["verdict_probabilities"]) == set(schema.VERDICTS)
    assert framework["needs_review"] == schema.needs_review(scoring["final_score"],
                                                            framework["confidence"])
    assert framework["doctrinal_clarity"] == schema.doctrinal_clarity(
        [t["theme"] for t in biblical["themes"]], [f["category"] for f in content["concern_flags"]])
    # The score sits in the predicted verdict's band.
    assert schema.verdict_for_score(scoring["final_score"]) == framework["verdict"]
    assert json.loads(json.dumps(data)) == data


def test_same_input_same_output_alone_or_in_any_batch(analyzer):
    first = [_stable(r) for r in analyzer.analyze_songs_batch(SONGS)]
    again = [_stable(r) for r in analyzer.analyze_songs_batch(SONGS)]
    assert first == again
    alone = _stable(analyzer.analyze_song(**SONGS[1]))
    reordered = analyzer.analyze_songs_batch([SONGS[1], SONGS[0]] * 2)
    assert alone == first[1] == _stable(reordered[0]) == _stable(reordered[2])


def test_logits_are_bit_identical_alone_or_in_a_batch(analyzer):
    import torch

    from selah.inference import forward_songs

    songs = SONGS[:2] * 3
    together = forward_songs(analyzer.model, analyzer.featurizer, songs, batch_size=4)
    alone = forward_songs(analyzer.model, analyzer.featurizer, SONGS[1:2])
    for name, value in alone.items():
        assert torch.equal(value[0], together[name][1]) and torch.equal(value[0], together[name][5])


def test_the_no_lyrics_rule_skips_the_model(analyzer, monkeypatch):
    import selah.inference

    def fail(*args, **kwargs):
        raise AssertionError("the model was called")

    monkeypatch.setattr(selah.inference, "predict_songs", fail)
    short, instrumental = analyzer.analyze_songs_batch(SONGS[2:])
    assert (short.get_final_score(), short.get_quality_level()) == (50.0, "No Lyrics Available")
    assert instrumental.get_quality_level() == "Instrumental"
    assert short.configuration_snapshot == {"rule": "no_lyrics"}


def test_supporting_scripture_comes_from_the_topic_table_for_predicted_themes(analyzer):
    table = analyzer.manifest["scripture"]
    for result in analyzer.analyze_songs_batch(SONGS[:2]):
        themes = {t["theme"] for t in result.biblical_analysis["themes"]}
        for item in result.biblical_analysis["supporting_scripture"]:
            assert item["source"] == "theme" and item["theme"] in themes
            assert item["reference"] in references_for(item["theme"], table)


def test_scripture_is_picked_round_robin_with_verse_text():
    """The hand-checked topic table first, the checkpoint's table for a theme it lacks."""
    themes = [{"theme": "Old Theme"}, {"theme": "Idolatry"}, {"theme": "Unknown"}]
    table = {"Old Theme": ["Hebrews 11:1", "Psalm 23:4"], "Idolatry": ["Hebrews 11:1"]}
    picked = scripture_for(themes, table, limit=3)
    assert [(p["reference"], p["theme"], p["source"]) for p in picked] == [
        ("Hebrews 11:1", "Old Theme", "theme"), ("Exodus 20:3-4", "Idolatry", "theme"),
        ("Psalm 23:4", "Old Theme", "theme")]
    assert picked[1]["text"].startswith("Thou shalt have no other gods")


def test_quoted_verses_come_first_and_do_not_count_against_the_limit():
    quoted = {"reference": "Psalm 46:10", "text": "Be still", "theme": "Quoted in the lyrics",
              "source": "quoted", "lines": [2], "match": 0.4}
    picked = scripture_for([{"theme": "Profanity"}], {}, limit=2, quotes=[quoted])
    assert [(p["reference"], p["source"]) for p in picked] == [
        ("Psalm 46:10", "quoted"), ("Ephesians 4:29", "theme"), ("Colossians 3:8", "theme")]


QUOTING = {"title": "Still", "artist": "Test Band",
           "lyrics": "The city never sleeps\nBe still, and know that I am God\n"
                     "The city never sleeps\nBe still, and know that I am God"}


def test_every_theme_and_concern_names_the_lines_behind_it(analyzer, monkeypatch):
    """With every theme and concern shown (thresholds 0), each carries evidence lines that are
    lines of the lyric; the explanation and the stored framework data name them."""
    decoding = {**analyzer._context["decoding"], "theme_threshold": 0.0,
                "concern_threshold": 0.0}
    monkeypatch.setitem(analyzer._context, "decoding", decoding)
    result = analyzer.analyze_song(**SONGS[0])
    themes, flags = result.biblical_analysis["themes"], result.content_analysis["concern_flags"]
    assert len(themes) == len(schema.THEMES) and len(flags) == len(schema.CONCERN_CATEGORIES)
    lines = SONGS[0]["lyrics"].splitlines()
    for item in themes + flags:
        assert 1 <= len(item["evidence"]) <= 3
        assert item["evidence"][0]["strength"] == 1.0
        for found in item["evidence"]:
            assert all(lines[n - 1].strip() == found["text"] for n in found["lines"])
            assert 0 < found["strength"] <= 1
    assert f"{flags[0]['category']}: {flags[0]['severity']} (line" in (
        result.scoring_results["explanation"])
    stored = legacy_columns(result)
    framework = stored["framework_data"]["evidence"]
    assert framework["concerns"][flags[0]["category"]] == sorted(
        {n for found in flags[0]["evidence"] for n in found["lines"]})
    assert set(framework["themes"]) == {t["theme"] for t in themes}
    assert stored["concerns"][0]["evidence"] == flags[0]["evidence"]
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()


def test_a_quoting_song_gets_its_verse_first(analyzer):
    result = analyzer.analyze_song(**QUOTING)
    first = result.biblical_analysis["supporting_scripture"][0]
    assert (first["reference"], first["source"], first["lines"]) == ("Psalm 46:10", "quoted",
                                                                     [2, 4])
    assert "Psalm 46:10 (lines 2 and 4)" in result.scoring_results["explanation"]
    assert legacy_columns(result)["framework_data"]["evidence"]["quoted_scripture"] == {
        "Psalm 46:10": [2, 4]}
    assert all(s["source"] == "theme" for s in result.biblical_analysis["supporting_scripture"][1:])


def test_evidence_can_be_turned_off(int8_checkpoint):
    plain = GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint, GPTOSS_EVIDENCE=False))
    assert plain.quotes is None
    result = plain.analyze_song(**QUOTING)
    assert all(s["source"] == "theme" for s in result.biblical_analysis["supporting_scripture"])
    assert not any("evidence" in item for item in result.biblical_analysis["themes"]
                   + result.content_analysis["concern_flags"])
    assert "evidence" not in result.model_analysis["framework"]
    with pytest.raises(AnalyzerUnavailable, match="GPTOSS_EVIDENCE"):
        GPTOSSChristianAnalyzer.resolve(config(int8_checkpoint, GPTOSS_EVIDENCE="yes"))


def test_songs_without_lyrics_carry_no_evidence(analyzer):
    for result in analyzer.analyze_songs_batch(SONGS[2:]):
        assert result.biblical_analysis["themes"] == []
        assert result.content_analysis["concern_flags"] == []
        assert "evidence" not in (result.model_analysis.get("framework") or {})


def test_a_model_failure_is_a_complete_error_result(analyzer, monkeypatch):
    import selah.inference

    def explode(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(selah.inference, "predict_songs", explode)
    result = analyzer.analyze_song(**SONGS[0])
    assert not result.is_successful() and "out of memory" in result.error_message
    assert result.configuration_snapshot["model_version"] == analyzer.model_version


def test_the_runtime_is_chosen_at_load_and_named_everywhere(int8_checkpoint):
    from selah.runtime import choose_runtime

    expected = choose_runtime("auto", "cpu").name
    ok, message = GPTOSSChristianAnalyzer.preflight_config(config(int8_checkpoint))
    assert ok and f"({expected} runtime)" in message
    analyzer = GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint))
    assert analyzer.runtime.name == expected and analyzer.runtime.requested == "auto"
    info = analyzer.info()
    assert info["runtime"] == expected and info["runtime_reason"] == analyzer.runtime.reason
    assert analyzer.analyze_song(**SONGS[0]).configuration_snapshot["runtime"] == expected


@pytest.mark.parametrize("runtime", ["int8", "bf16", "float32"])
def test_every_runtime_serves_the_same_verdicts(analyzer, int8_checkpoint, runtime):
    from selah.runtime import choose_runtime

    # bf16 where the CPU has bf16 instructions; int8, saying why, on one without (the machines
    # here differ: some list AMX tiles, some avx512_bf16 only, some neither).
    expected = choose_runtime(runtime, "cpu").name
    served = GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint, GPTOSS_RUNTIME=runtime))
    assert served.runtime.name == expected and served.runtime.requested == runtime
    assert served.analyze_song(**SONGS[0]).configuration_snapshot["runtime"] == expected
    ours = served.analyze_songs_batch(SONGS[:2])
    reference = analyzer.analyze_songs_batch(SONGS[:2])
    for got, want in zip(ours, reference):
        assert legacy_columns(got)["verdict"] == legacy_columns(want)["verdict"]
        assert got.get_final_score() == pytest.approx(want.get_final_score(), abs=1.0)


def test_an_unknown_runtime_is_refused_before_loading(int8_checkpoint):
    ok, message = GPTOSSChristianAnalyzer.preflight_config(
        config(int8_checkpoint, GPTOSS_RUNTIME="int4"))
    assert not ok
    assert "GPTOSS_RUNTIME='int4' is not one of auto, int8, int8-compiled, bf16, float32" in message
    with pytest.raises(AnalyzerUnavailable, match="GPTOSS_RUNTIME"):
        GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint, GPTOSS_RUNTIME="int4"))


def test_a_runtime_that_fails_its_first_prediction_falls_back_to_int8(int8_checkpoint,
                                                                       monkeypatch):
    import selah.int8

    def broken(model, runtime, rows=()):
        for module in model.modules():
            if isinstance(module, selah.int8.Int8Linear):
                module.forward = lambda x: (_ for _ in ()).throw(RuntimeError("no such kernel"))
        return model

    monkeypatch.setattr(selah.int8, "apply_runtime", broken)
    # float32: a runtime every CPU is given, so its first prediction runs (bf16 is not given
    # to a CPU without bf16 instructions at all)
    served = GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint, GPTOSS_RUNTIME="float32"))
    assert served.runtime.name == "int8" and served.runtime.requested == "float32"
    assert "float32 could not run (RuntimeError: no such kernel): int8 instead" in \
        served.runtime.reason
    result = served.analyze_song(**SONGS[0])
    assert result.error_message is None and result.configuration_snapshot["runtime"] == "int8"


def test_the_heap_is_trimmed_every_so_many_characters(analyzer, monkeypatch):
    from selah.runtime import HeapTrimmer

    calls = []
    trimmer = HeapTrimmer(every_chars=len(SONGS[0]["lyrics"]) + len(SONGS[1]["lyrics"]) + 1)
    trimmer._trim = calls.append
    monkeypatch.setattr(analyzer, "heap", trimmer)
    analyzer.analyze_songs_batch(SONGS[:2])
    assert calls == [] and trimmer.pending == trimmer.every_chars - 1
    analyzer.analyze_song(**SONGS[1])
    assert calls == [0] and trimmer.trims == 1 and trimmer.pending == 0
    analyzer.analyze_songs_batch(SONGS[2:])  # no lyrics to speak of: the model does not run
    assert calls == [0] and trimmer.pending == 0


@pytest.mark.slow
def test_the_compiled_runtime_serves_the_int8_answers_alone_or_in_any_batch(analyzer,
                                                                          int8_checkpoint):
    """torch.compile fuses the quantization around the same int8 GEMMs: the verdicts stay,
    and a song's result still does not depend on its batch."""
    served = GPTOSSChristianAnalyzer.from_config(
        config(int8_checkpoint, GPTOSS_RUNTIME="int8-compiled"))
    assert served.runtime.name == "int8-compiled", served.runtime.reason
    together = served.analyze_songs_batch(SONGS)
    assert [_stable(r) for r in served.analyze_songs_batch(SONGS[::-1])][::-1] == \
        [_stable(r) for r in together]
    assert _stable(served.analyze_song(**SONGS[0])) == _stable(together[0])
    for got, want in zip(together, analyzer.analyze_songs_batch(SONGS)):
        assert legacy_columns(got)["verdict"] == legacy_columns(want)["verdict"]
        assert got.get_final_score() == pytest.approx(want.get_final_score(), abs=1.0)


def test_a_load_trims_the_heap_its_calibration_left(int8_checkpoint, monkeypatch):
    from selah.runtime import HeapTrimmer

    calls = []
    monkeypatch.setattr(HeapTrimmer, "trim", lambda self: calls.append(self))
    served = GPTOSSChristianAnalyzer.from_config(config(int8_checkpoint))
    assert calls == [served.heap]


def test_a_trim_now_starts_the_count_again():
    from selah.runtime import HeapTrimmer

    calls = []
    trimmer = HeapTrimmer(every_chars=100)
    trimmer._trim = calls.append
    trimmer.analysed(60)
    trimmer.trim()
    trimmer.analysed(60)  # 60 since the trim: not yet
    assert calls == [0] and trimmer.trims == 1 and trimmer.pending == 60


def test_a_request_threads_song_has_its_quotes_found_on_the_torch_thread(analyzer, monkeypatch):
    """The quote index uses torch ops: run from a request thread they started a second OpenMP
    team, and a 1,500-character song took 361 ms over HTTP instead of 99. Everything but the
    rendering (plain Python: no torch) runs on the torch thread."""
    import threading

    from selah.runtime import TORCH_THREAD

    index, seen = analyzer.quotes, []
    original = type(index).find
    monkeypatch.setattr(type(index), "find",
                        lambda self, lyrics, *a: seen.append(threading.get_ident())
                        or original(self, lyrics, *a))
    results = []
    thread = threading.Thread(target=lambda: results.append(analyzer.analyze_song(**QUOTING)))
    thread.start()
    thread.join()
    assert results[0].biblical_analysis["supporting_scripture"][0]["source"] == "quoted"
    assert seen and set(seen) == {TORCH_THREAD._ident} and thread.ident not in seen
    prediction = analyzer._predict([QUOTING])[0][0]
    assert all(isinstance(row[0], float) for row in prediction["line_logits"]["themes"])
