"""Teacher signals from the offline tools, with the source recorded per field."""

import pytest

from selah import schema
from training.labels.signals import SignalTagger


@pytest.fixture(scope="module")
def tagger():
    return SignalTagger()


def test_sentiment_follows_vader(tagger):
    happy = tagger.sentiment("I love this bright morning\nJoy and thanks and wonderful praise")
    sad = tagger.sentiment("I hate this awful lonely night\nEverything is broken and terrible")
    empty = tagger.sentiment("")
    assert (happy.label, sad.label, empty.label) == ("positive", "negative", "neutral")
    assert set(happy.scores) == set(schema.SENTIMENT_LABELS)
    assert happy.source.startswith("vaderSentiment-")


def test_emotion_maps_nrc_onto_the_seven_labels(tagger):
    afraid = tagger.emotion("terror and horror and panic, afraid of the fear in the dark")
    plain = tagger.emotion("we walk along the road to the store and back " * 5)
    assert afraid.label == "fear"
    assert plain.label == "neutral"
    assert set(afraid.scores) == set(schema.EMOTION_LABELS)
    assert sum(afraid.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert "NRC" in afraid.source


def test_safety_from_the_bundled_classifier(tagger):
    rude, clean = tagger.safety_many(["shut up you stupid fucking idiot", "the sun is warm today"])
    assert (rude.label, clean.label) == ("toxic", "non_toxic")
    assert rude.scores["toxic"] > 0.5 > clean.scores["toxic"]
    assert tagger.safety("").label == "non_toxic"
    assert rude.source.startswith("alt-profanity-check-")


def test_values_carried_by_the_label_win_and_say_so(tagger):
    tagged = tagger.tag_many(["I love this bright morning"], [{"sentiment": "negative"}])[0]
    assert tagged["sentiment"].label == "negative" and tagged["sentiment"].source == "label"
    assert tagged["emotion"].source != "label"
    assert set(tagged) == {"sentiment", "emotion", "safety"}
    assert tagged["safety"].to_dict()["source"] == tagger.sources["safety"]
