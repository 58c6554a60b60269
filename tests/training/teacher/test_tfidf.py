"""The lexical teacher member on the twelve written songs: its logits in the student's head
layout, fitted on the training songs alone (its place in the heads teacher: test_heads.py)."""

import pytest
import torch

from tests.training.paths import SONGS
from training.data.readers import Example, read_examples
from training.teacher import ensemble, tfidf

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def songs() -> list[Example]:
    return read_examples(SONGS)[0]


def test_logits_have_the_student_head_layout(songs):
    logits = tfidf.fit_logits(songs[:8], songs)
    assert set(logits) == set(ensemble.LABELLED) | {"score"}
    for name, value in logits.items():
        assert value.shape == (len(songs), ensemble.SPECS[name].width), name
        assert torch.isfinite(value).all(), name
    for name in ("verdict", "formation_risk", "narrative_voice", "lament_filter"):
        assert torch.allclose(logits[name].exp().sum(-1), torch.ones(len(songs)), atol=1e-4)
    scores = ensemble.probabilities(logits)["score"]
    assert ((scores >= 0.99) & (scores <= 99.01)).all()


def test_it_learns_the_songs_it_is_fitted_on(songs):
    logits = tfidf.fit_logits(songs, songs)
    verdicts = ensemble.SPECS["verdict"].labels
    predicted = [verdicts[int(i)] for i in logits["verdict"].argmax(-1)]
    assert predicted == [e.label.verdict for e in songs]
    themes = ensemble.probabilities(logits)["themes"]
    for row, song in enumerate(songs):  # each song's own themes above the ones it lacks
        labels = ensemble.SPECS["themes"].labels
        own = [themes[row, labels.index(t)] for t in song.label.themes]
        if own and len(own) < len(labels):
            others = [themes[row, j] for j, t in enumerate(labels) if t not in song.label.themes]
            assert min(own) > max(others) - 0.5


def test_the_vocabulary_comes_from_the_training_songs_alone(songs):
    unseen = Example("new", "Zzyzx Qwv", "Xylk", "glorbnak\nplimf trezzo\n", songs[0].label)
    _, applied = tfidf.vectorize(songs, [unseen, songs[0]])
    assert applied[0].nnz < applied[1].nnz / 10  # a few shared character runs at most
    alone, _ = tfidf.vectorize(songs[:6], [unseen])
    more, _ = tfidf.vectorize(songs, [unseen])
    assert alone.shape[1] < more.shape[1]


def test_a_field_no_training_song_varies_on_gets_its_rate(songs):
    same = [Example(e.song_id, e.title, e.artist, e.lyrics, songs[0].label) for e in songs]
    logits = tfidf.fit_logits(same, songs)
    assert torch.allclose(logits["verdict"], logits["verdict"][:1].expand(len(songs), -1))
    assert int(logits["verdict"][0].argmax()) == \
        ensemble.SPECS["verdict"].labels.index(songs[0].label.verdict)

