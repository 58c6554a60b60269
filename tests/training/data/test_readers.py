"""Readers of the three formats, normalisation counts, malformed input, de-duplication, splits."""

import json
from collections import Counter

import pytest

from training.data.normalize import LabelError, NormStats, normalize_label
from training.data.readers import (DataError, assign_splits, deduplicate, holdout_split, kfold,
                                   read_examples, song_id)
from training.data.report import main as data_main

FORMATS = {"training": "songs_training.jsonl", "evaluation": "songs_evaluation.jsonl",
           "chat": "songs_chat.jsonl"}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_reads_to_the_same_examples(fixture_path, fmt):
    examples, report = read_examples(fixture_path(FORMATS[fmt]))
    reference, _ = read_examples(fixture_path(FORMATS["training"]))
    assert report.formats == Counter({fmt: 12})
    assert [e.label for e in examples] == [e.label for e in reference]
    assert [(e.title, e.artist, e.lyrics) for e in examples] == [
        (e.title, e.artist, e.lyrics) for e in reference]


def test_fixture_songs_cover_every_verdict_and_the_edge_cases(fixture_path):
    examples, report = read_examples(fixture_path("songs_training.jsonl"))
    verdicts = Counter(e.label.verdict for e in examples)
    assert set(verdicts) == {"freely_listen", "context_required", "caution_limit",
                             "avoid_formation"}
    assert any(e.lyrics == "" for e in examples)  # an instrumental
    assert any("\u05d4" in e.lyrics and "\x00" in e.lyrics for e in examples)  # odd unicode
    counts = report.stats.counts
    assert counts["scripture.invalid_dropped"] == 1  # Psalm 151:1
    assert counts["theme.folded"] == 7 and counts["concern.folded"] == 2
    valley = next(e for e in examples if e.title == "Psalm for the Valley")
    assert valley.label.scripture_references == ("Psalm 23:4", "Psalm 42:11")
    assert valley.label.lament_filter_applied is True


@pytest.mark.parametrize("name, line, message", [
    ("bad_json.jsonl", 3, "bad JSON"),
    ("missing_lyrics.jsonl", 2, "missing lyrics"),
    ("unknown_verdict.jsonl", 2, "unknown verdict 'maybe_later'"),
])
def test_malformed_lines_name_the_line_or_are_counted(fixture_path, name, line, message):
    with pytest.raises(DataError, match=rf"{name}:{line}: {message}"):
        read_examples(fixture_path(name))
    examples, report = read_examples(fixture_path(name), skip_bad=True)
    assert [number for number, _ in report.skipped] == [line]
    assert message.split(" '")[0] in report.skipped[0][1]
    assert examples and line not in [e.line for e in examples]


def test_a_file_with_no_usable_line_is_an_error_even_when_skipping(tmp_path):
    path = tmp_path / "all_bad.jsonl"
    path.write_text('{"nope": 1}\nnot json\n\n', encoding="utf-8")
    with pytest.raises(DataError, match="no usable records .*2 skipped, 1 blank"):
        read_examples(path, skip_bad=True)


@pytest.mark.parametrize("label, error", [
    ({"score": 50}, "no verdict"),
    ({"verdict": "caution_limit"}, "no numeric score"),
    ({"verdict": "caution_limit", "score": 140}, "outside 0-100"),
    ({"verdict": "caution_limit", "score": "high"}, "not a number"),
    ("caution_limit", "must be a JSON object"),
])
def test_unusable_labels_raise(label, error):
    with pytest.raises(LabelError, match=error):
        normalize_label(label, NormStats())


def test_plan_style_label_is_normalised_and_counted():
    stats = NormStats()
    label, signals = normalize_label({
        "verdict": "RECOMMENDED", "score": 0.95, "themes": ["grace", "salvation", "Chess"],
        "concerns": [{"type": "Occult", "severity": "Severe"}, "Idolatry"],
        "scripture_references": ["Ephesians 2:8-9", "1 Peter 2:25", "John 3:99"],
        "sentiment": "positive", "safety": "safe", "emotion": "hope", "narrative_voice": "god",
    }, stats)
    assert (label.verdict, label.score) == ("freely_listen", 95)
    assert label.themes == ("Gospel Message", "God's Love & Grace")
    assert label.concerns == (("Idolatry", "medium"), ("Occult/Witchcraft", "high"))
    assert label.scripture_references == ("Ephesians 2:8-9", "1 Peter 2:25")
    assert label.narrative_voice == "God"
    assert signals == {"sentiment": "positive", "safety": "non_toxic"}
    for event in ("verdict.alias_folded", "score.fraction_scaled", "theme.unknown_dropped",
                  "concern.severity_fixed", "concern.severity_missing_defaulted",
                  "scripture.invalid_dropped", "signal.emotion_unknown_dropped",
                  "narrative_voice.case_fixed", "formation_risk.missing"):
        assert stats.counts[event] == 1, event


def test_duplicates_by_title_artist_and_by_lyrics_are_dropped(fixture_path, tmp_path):
    text = fixture_path("songs_training.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    retitled = dict(rows[0], title="Morning Mercy (Live)")
    recased = dict(rows[1], title=rows[1]["title"].upper() + "!",
                   lyrics="different words here entirely")
    path = tmp_path / "dupes.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows + [retitled, recased]) + "\n")
    examples, report = read_examples(path)
    assert len(examples) == 12
    duplicates = [(line, kind) for line, kind, _ in report.duplicates]
    assert duplicates == [(13, "lyrics"), (14, "title_artist")]
    assert len(deduplicate(read_examples(path, dedupe=False)[0])) == 12


def test_song_id_ignores_case_and_punctuation():
    assert song_id("Amazing Grace!", "John Newton") == song_id("amazing  grace", "JOHN NEWTON")
    assert song_id("Amazing Grace", "A") != song_id("Amazing Grace", "B")


def _many(fixture_path, copies=10):
    examples, _ = read_examples(fixture_path("songs_training.jsonl"))
    out = []
    for index in range(copies):
        for example in examples:
            out.append(type(example)(song_id(f"{example.title} {index}", example.artist),
                                     example.title, example.artist, example.lyrics, example.label))
    return out


def test_splits_are_deterministic_stratified_and_by_song(fixture_path):
    examples = _many(fixture_path)
    splits = assign_splits(examples, k=5, holdout=0.2, seed=7)
    assert splits == assign_splits(list(reversed(examples)), k=5, holdout=0.2, seed=7)
    assert splits != assign_splits(examples, k=5, holdout=0.2, seed=8)
    sizes = Counter(splits.values())
    assert sizes["holdout"] == 24
    assert max(v for k, v in sizes.items() if k != "holdout") - min(
        v for k, v in sizes.items() if k != "holdout") <= 1
    for verdict in ("freely_listen", "avoid_formation"):
        held = [e for e in examples
                if e.label.verdict == verdict and splits[e.song_id] == "holdout"]
        total = [e for e in examples if e.label.verdict == verdict]
        assert len(held) == round(len(total) * 0.2)
    folds = kfold(examples, k=5, holdout=0.2, seed=7)
    validation_ids = [e.song_id for _, val in folds for e in val]
    assert len(validation_ids) == len(set(validation_ids)) == len(examples) - 24
    for train, val in folds:
        assert not {e.song_id for e in train} & {e.song_id for e in val}
        assert all(splits[e.song_id] != "holdout" for e in train)
    dev, held = holdout_split(examples, 0.2, seed=7)
    assert len(held) == 24 and len(dev) == len(examples) - 24


def test_report_command_prints_distribution_and_folds(fixture_path, capsys):
    assert data_main(["report", str(fixture_path("songs_chat.jsonl"))]) == 0
    out = capsys.readouterr().out
    assert "| songs kept | 12 |" in out
    assert "| Occult | Occult/Witchcraft | 1 |" in out
    assert "| scripture | Psalm 151:1 | 1 |" in out
    assert "Morning" not in out and "mercy" not in out  # aggregates only, no titles or lyrics


def test_report_command_fails_clearly_on_bad_input(fixture_path, capsys):
    assert data_main(["report", str(fixture_path("bad_json.jsonl"))]) == 2
    assert "bad_json.jsonl:3: bad JSON" in capsys.readouterr().err
    assert data_main(["report", "--skip-bad", str(fixture_path("bad_json.jsonl"))]) == 0
    assert "skipped line 3: bad JSON" in capsys.readouterr().out


def test_split_command_writes_ids_only(fixture_path, tmp_path):
    assert data_main(["split", str(fixture_path("songs_training.jsonl")), "--out", str(tmp_path),
                      "--k", "2", "--holdout", "0.25"]) == 0
    payload = json.loads((tmp_path / "splits.json").read_text())
    assert len(payload["splits"]) == 12 and payload["counts"]["holdout"] == 3


@pytest.mark.data
def test_shared_data_reads_folds_and_drops_nothing_silently(shared_songs):
    examples, report = read_examples(shared_songs)
    assert report.lines == 995 and not report.skipped
    assert len(examples) + len(report.duplicates) == 995
    assert report.stats.counts["theme.unknown_dropped"] == 0
    assert report.stats.counts["concern.unknown_dropped"] == 0
    assert report.stats.counts["verdict.outside_score_band"] == 1
    assert {e.label.verdict for e in examples} == {
        "freely_listen", "context_required", "caution_limit", "avoid_formation"}
    theme_raw = {raw for (kind, raw, canon) in report.stats.folds if kind == "theme"}
    assert len(theme_raw) == 157
    assert all(canon for (kind, _, canon) in report.stats.folds if kind in ("theme", "concern"))


def test_report_with_signals_names_each_source(fixture_path, capsys):
    assert data_main(["report", "--signals", str(fixture_path("songs_training.jsonl"))]) == 0
    out = capsys.readouterr().out
    assert "### sentiment (source: vaderSentiment-" in out
    assert "### emotion (source: nrclex-" in out
    assert "### safety (source: alt-profanity-check-" in out
