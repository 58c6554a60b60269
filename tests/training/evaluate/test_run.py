"""The evaluate command: any backend through the public interface, outputs, repeats, comparisons."""

import json

import pytest

import selah.analyzers as analyzers
from selah.analyzers.base import AnalysisResult, BaseAnalyzer
from tests.fake_analyzer import FakeAnalyzer
from training.data.readers import read_examples
from training.evaluate.results import compare_predictions, prediction_from_result
from training.evaluate.run import evaluate, main


class OracleAnalyzer(BaseAnalyzer):
    """Answers each song with its gold label, except `moved` titles: `{title: (points, verdict)}`.

    With `alternate`, the moves apply only on every other call (a backend that is not stable).
    """

    backend = "oracle"
    model_version = "oracle-1"

    def __init__(self, examples, moved=None, alternate=False, fail=False):
        self.gold = {e.lyrics: e.label for e in examples}
        self.moved, self.alternate, self.fail, self.calls = moved or {}, alternate, fail, 0

    def _analyze_batch(self, items):
        if self.fail:
            raise RuntimeError("model crashed")
        self.calls += 1
        active = not self.alternate or self.calls % 2 == 1
        out = []
        for title, artist, lyrics, _ in items:
            label = self.gold[lyrics]
            shift, verdict = self.moved.get(title, (0.0, None)) if active else (0.0, None)
            out.append(AnalysisResult(
                title=title, artist=artist, lyrics_text=lyrics,
                scoring_results={"final_score": label.score + shift, "explanation": "oracle"},
                biblical_analysis={"themes": [{"theme": t} for t in label.themes],
                                   "supporting_scripture": [{"reference": r} for r in
                                                            label.scripture_references]},
                model_analysis={"framework": {"verdict": verdict or label.verdict,
                                              "confidence": 0.8}},
            ))
        return out


@pytest.fixture
def songs(fixture_path):
    return read_examples(fixture_path("songs_training.jsonl"))[0]


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_fake_backend_run_writes_the_three_outputs(songs, fake_analyzer, tmp_path):
    summary = evaluate(songs, fake_analyzer, tmp_path)
    assert summary["n"] == 12 and summary["backend"] == "fake"
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix"):
        assert key in summary["verdict"]
    for key in ("latency_s", "songs_per_minute", "peak_rss_mib", "themes", "scripture",
                "calibration"):
        assert summary[key] is not None
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    rows = _lines(tmp_path / "predictions.jsonl")
    assert len(rows) == 12 and all("lyrics" not in json.dumps(r) for r in rows)
    instrumental = next(r for r in rows if r["title"].startswith("Interlude"))
    assert instrumental["pred"]["verdict_source"] == "score_band"
    pred = instrumental["pred"]
    assert (pred["score"], pred["verdict"]) == (75.0, "context_required")
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "Morning Mercy" not in html


def test_metrics_reach_their_maximum_for_a_perfect_backend(songs, tmp_path):
    summary = evaluate(songs, OracleAnalyzer(songs), tmp_path)
    assert summary["verdict"]["accuracy"] == 1.0 and summary["verdict"]["macro_f1"] == 1.0
    assert summary["score"]["mae"] == 0.0 and summary["score"]["pearson"] == pytest.approx(1.0)
    assert summary["themes"]["micro_f1"] == 1.0
    assert summary["scripture"]["valid_share"] == 1.0
    assert summary["calibration"]["n_with_confidence"] == 11  # the instrumental never reaches it


def test_repeat_reports_songs_whose_result_changed(songs, tmp_path):
    stable = evaluate(songs, FakeAnalyzer(), tmp_path / "a", repeat=3)
    assert stable["repeat"] == {"k": 3, "changed_share": 0.0, "changed": 0,
                                "max_score_delta": 0.0, "mean_score_delta": 0.0}
    moved = {"Kitchen Table": (2.0, None), "Last Call": (-4.0, None)}
    flaky = evaluate(songs, OracleAnalyzer(songs, moved, alternate=True), tmp_path / "b", repeat=2,
                     batch_size=12)
    assert flaky["repeat"]["changed"] == 2 and flaky["repeat"]["changed_share"] == 2 / 12
    assert flaky["repeat"]["max_score_delta"] == 4.0
    assert len(_lines(tmp_path / "b" / "predictions.jsonl")[0]["repeats"]) == 2


def test_failed_analyses_count_as_errors_not_as_missing(songs, tmp_path):
    summary = evaluate(songs, OracleAnalyzer(songs, fail=True), tmp_path)
    assert summary["n_errors"] == 11
    assert "error" in summary["verdict"]["labels"]
    assert summary["verdict"]["per_class"]["error"]["support"] == 0


def test_plan_names_and_confidence_are_read_off_the_result():
    result = AnalysisResult(title="t", artist="a", lyrics_text="x" * 20,
                            scoring_results={"final_score": 44.0},
                            model_analysis={"framework": {
                                "verdict": "CONCERNING",
                                "verdict_probabilities": {"caution_limit": 0.7}}},
                            biblical_analysis={"themes": [{"theme": "Love"}, {"theme": "Chess"}]})
    pred = prediction_from_result(result)
    assert (pred["verdict"], pred["confidence"]) == ("caution_limit", 0.7)
    assert pred["themes"] == ["Chess", "Love for Others"]


def test_huge_input_and_odd_unicode_go_through(huge_song_file, fake_analyzer, tmp_path):
    songs, _ = read_examples(huge_song_file)
    assert len(songs[0].lyrics) > 200_000
    summary = evaluate(songs, fake_analyzer, tmp_path)
    assert summary["n"] == 1 and summary["n_errors"] == 0


@pytest.fixture
def with_fake_backend(monkeypatch):
    monkeypatch.setitem(analyzers.BACKENDS, "fake", FakeAnalyzer)


def test_cli_resolves_a_registered_backend_by_name(with_fake_backend, fixture_path, tmp_path,
                                                   capsys):
    out = tmp_path / "run"
    rc = main(["--data", str(fixture_path("songs_chat.jsonl")), "--backend", "fake", "--out",
               str(out), "--repeat", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "n=12" in captured.out
    assert "24/24" in captured.err  # the progress bar counts songs times repeats
    assert {p.name for p in out.iterdir()} == {"summary.json", "predictions.jsonl", "report.html",
                                               "config.yaml"}
    assert (out / "config.yaml").read_text().startswith("# python -m training.evaluate --data")


def test_cli_unknown_backend_lists_the_valid_ones(with_fake_backend, fixture_path, tmp_path,
                                                  capsys):
    rc = main(["--data", str(fixture_path("songs_training.jsonl")), "--backend", "nope", "--out",
               str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown ANALYZER_BACKEND 'nope'; valid backends: " in err
    assert "fake" in err and "gptoss" in err


def test_cli_gptoss_without_checkpoint_fails_at_setup(fixture_path, tmp_path, capsys):
    rc = main(["--data", str(fixture_path("songs_training.jsonl")), "--backend", "gptoss",
               "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "backend 'gptoss' cannot load: " in capsys.readouterr().err


def test_cli_malformed_data_names_the_line_or_counts_the_skip(with_fake_backend, fixture_path,
                                                              tmp_path, capsys):
    args = ["--data", str(fixture_path("missing_lyrics.jsonl")), "--backend", "fake", "--out",
            str(tmp_path), "--no-progress"]
    assert main(args) == 2
    assert "missing_lyrics.jsonl:2: missing lyrics" in capsys.readouterr().err
    assert main(args + ["--skip-bad"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["n"], summary["skipped_lines"]) == (2, 1)


def test_cli_needs_data_backend_and_out(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--data", "x.jsonl"])
    assert exc.value.code == 2
    assert "missing --backend, --out" in capsys.readouterr().err


def test_compare_gives_agreement_and_kappa(songs, tmp_path, capsys):
    moved = {"Cornerstone Road": (-6.0, None), "Kitchen Table": (3.0, None),
             "Last Call": (10.0, None), "Glitter and Gold": (0.0, "avoid_formation")}
    evaluate(songs, OracleAnalyzer(songs), tmp_path / "teacher")
    evaluate(songs, OracleAnalyzer(songs, moved), tmp_path / "student")
    teacher = tmp_path / "teacher" / "predictions.jsonl"
    student = tmp_path / "student" / "predictions.jsonl"
    result = compare_predictions(teacher, student)
    assert result["n_matched"] == 12
    # Misses: Cornerstone (6 points), Last Call (10 points), Glitter (verdict).
    assert result["agreement"] == pytest.approx(9 / 12)
    assert result["verdict_agreement"] == pytest.approx(11 / 12)
    assert result["score_mae"] == pytest.approx(19 / 12)
    # Teacher 4/3/2/3 songs per verdict, student 4/3/1/4: p_o = 11/12, p_e = 39/144.
    assert result["cohen_kappa"] == pytest.approx(93 / 105)
    rc = main(["--compare", str(teacher), str(student), "--out", str(tmp_path / "cmp")])
    assert rc == 0 and json.loads((tmp_path / "cmp" / "compare.json").read_text()) == result


def test_compare_of_unrelated_files_fails_clearly(songs, tmp_path, capsys):
    evaluate(songs[:3], OracleAnalyzer(songs), tmp_path / "a")
    evaluate(songs[3:6], OracleAnalyzer(songs), tmp_path / "b")
    rc = main(["--compare", str(tmp_path / "a" / "predictions.jsonl"),
               str(tmp_path / "b" / "predictions.jsonl")])
    assert rc == 2 and "share no songs" in capsys.readouterr().err


@pytest.mark.data
def test_fake_backend_smoke_run_on_the_shared_data(shared_songs, with_fake_backend, tmp_path):
    assert main(["--data", str(shared_songs), "--backend", "fake", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n"] + summary["duplicates_dropped"] == 995
    assert summary["n_errors"] == 0 and 0.0 <= summary["verdict"]["macro_f1"] <= 1.0
