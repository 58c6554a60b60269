"""Teacher signal for the fields the labels lack: sentiment, emotion and safety, from offline tools.

Each field comes from a real tool made for the job, run locally with the data it ships, and every
`Signal` records its `source` (tool and version) so a model card can say where each field came
from. When a label carries the field itself (the plan's chat format), that value wins and the
source reads "label".

- sentiment: VADER (vaderSentiment), compound score per lyric line, averaged; the label uses
  VADER's documented thresholds (>= 0.05 positive, <= -0.05 negative, else neutral); `scores`
  are the mean per-line negative/neutral/positive proportions.
- emotion: the NRC Word-Emotion Association Lexicon as packaged by NRCLex (bundled JSON; no
  corpus download: we tokenise ourselves and call `load_token_list`, because `load_raw_text`
  needs TextBlob corpora). NRC's anger, disgust, fear, joy, sadness and surprise map one to one;
  NRC's trust, anticipation, positive and negative have no counterpart and are not used. Neutral
  gets a pseudo-count of NEUTRAL_PER_TOKEN per token, so lyrics with few emotion words read
  neutral. The NRC lexicon is free for research; commercial use needs a licence from NRC Canada.
- safety: alt-profanity-check's bundled linear SVM on the whole lyrics (lines joined); toxic
  above 0.5, the legacy rule for its toxicity model. (Scoring each line and taking the worst
  flags half of the labelled songs, most of them for a single word, so we do not.)
"""

import re
from dataclasses import dataclass
from importlib.metadata import version

from selah import schema
from selah.deps import require

NEUTRAL_PER_TOKEN = 0.03
TOXIC_THRESHOLD = 0.5
VADER_POSITIVE, VADER_NEGATIVE = 0.05, -0.05
_NRC_EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Signal:
    """One field's teacher signal: primary label, scores over the field's labels, and its source."""

    label: str
    scores: dict
    source: str

    def to_dict(self) -> dict:
        """`{label, scores, source}`, JSON-ready."""
        return {"label": self.label, "scores": dict(self.scores), "source": self.source}


def _lines(lyrics: str) -> list[str]:
    return [line.strip() for line in lyrics.splitlines() if line.strip()]


class SignalTagger:
    """Loads the three offline tools once and tags lyrics with sentiment, emotion and safety."""

    def __init__(self):
        vader = require("vaderSentiment.vaderSentiment", "the sentiment teacher signal")
        nrclex = require("nrclex", "the emotion teacher signal")
        self._profanity = require("profanity_check", "the safety teacher signal")
        self._vader = vader.SentimentIntensityAnalyzer()
        self._nrc = nrclex.NRCLex(None)
        self.sources = {
            "sentiment": f"vaderSentiment-{version('vaderSentiment')}",
            "emotion": f"nrclex-{version('nrclex')} (NRC EmoLex)",
            "safety": f"alt-profanity-check-{version('alt-profanity-check')}",
        }

    def sentiment(self, lyrics: str) -> Signal:
        """VADER sentiment of the lyrics (mean over lines)."""
        lines = _lines(lyrics)
        if not lines:
            return Signal("neutral", {"negative": 0.0, "neutral": 1.0, "positive": 0.0},
                          self.sources["sentiment"])
        polarity = [self._vader.polarity_scores(line) for line in lines]
        compound = sum(p["compound"] for p in polarity) / len(polarity)
        scores = {
            "negative": sum(p["neg"] for p in polarity) / len(polarity),
            "neutral": sum(p["neu"] for p in polarity) / len(polarity),
            "positive": sum(p["pos"] for p in polarity) / len(polarity),
        }
        if compound >= VADER_POSITIVE:
            label = "positive"
        elif compound <= VADER_NEGATIVE:
            label = "negative"
        else:
            label = "neutral"
        scores = {k: round(v, 4) for k, v in scores.items()}
        return Signal(label, scores, self.sources["sentiment"])

    def emotion(self, lyrics: str) -> Signal:
        """NRC-lexicon emotion of the lyrics over the seven emotion labels."""
        tokens = _TOKEN_RE.findall(lyrics.casefold())
        self._nrc.load_token_list(tokens)
        raw = self._nrc.raw_emotion_scores
        counts = {emotion: float(raw.get(emotion, 0)) for emotion in _NRC_EMOTIONS}
        counts["neutral"] = NEUTRAL_PER_TOKEN * len(tokens) if tokens else 1.0
        total = sum(counts.values()) or 1.0
        scores = {label: round(counts[label] / total, 4) for label in schema.EMOTION_LABELS}
        label = max(schema.EMOTION_LABELS, key=lambda name: (scores[name], name == "neutral"))
        return Signal(label, scores, self.sources["emotion"])

    def safety_many(self, lyrics_list: list[str]) -> list[Signal]:
        """Safety of many songs with one classifier call (each song's whole lyrics)."""
        texts = [" ".join(_lines(lyrics)) for lyrics in lyrics_list]
        present = [text for text in texts if text]
        probabilities = iter(self._profanity.predict_prob(present) if present else [])
        signals = []
        for text in texts:
            toxic = float(next(probabilities)) if text else 0.0
            label = "toxic" if toxic > TOXIC_THRESHOLD else "non_toxic"
            scores = {"non_toxic": round(1.0 - toxic, 4), "toxic": round(toxic, 4)}
            signals.append(Signal(label, scores, self.sources["safety"]))
        return signals

    def safety(self, lyrics: str) -> Signal:
        """Safety of one song: toxic when its most offensive line scores above 0.5."""
        return self.safety_many([lyrics])[0]

    def tag_many(self, lyrics_list: list[str], label_signals: list[dict] | None = None
                 ) -> list[dict[str, Signal]]:
        """`{sentiment, emotion, safety}` Signals per song; values a label carries win ("label")."""
        label_signals = label_signals or [{} for _ in lyrics_list]
        safety = self.safety_many(lyrics_list)
        tagged = []
        for lyrics, carried, safe in zip(lyrics_list, label_signals, safety):
            signals = {"sentiment": self.sentiment(lyrics), "emotion": self.emotion(lyrics),
                       "safety": safe}
            for key, value in carried.items():
                signals[key] = Signal(value, {value: 1.0}, "label")
            tagged.append(signals)
        return tagged
