"""A deterministic fake analyzer for tests: a real backend shape, a rule instead of a model.

The score is a hash of the normalised lyrics, so the same lyrics always give the same result and
different lyrics usually differ. `delay` makes each song take time (crash tests), and `calls`
counts songs the fake actually analysed in this process.
"""

import hashlib
import os
import threading
import time
from typing import Any, ClassVar, Mapping

from selah.analyzers.base import AnalysisResult, BaseAnalyzer, concern_level, quality_level

VERDICTS = ((85, "freely_listen"), (60, "context_required"), (40, "caution_limit"),
            (0, "avoid_formation"))


class FakeAnalyzer(BaseAnalyzer):
    """Backend `fake`; version `fake-1` unless FAKE_MODEL_VERSION says otherwise."""

    backend: ClassVar[str] = "fake"
    calls: ClassVar[int] = 0
    _calls_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, version: str = "fake-1", delay: float = 0.0):
        self.model_version = version
        self.delay = delay

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FakeAnalyzer":
        return cls(
            version=config.get("FAKE_MODEL_VERSION") or os.environ.get("FAKE_MODEL_VERSION", "fake-1"),
            delay=float(config.get("FAKE_DELAY") or os.environ.get("FAKE_DELAY", "0")),
        )

    @classmethod
    def preflight_config(cls, config: Mapping[str, Any]) -> tuple[bool, str]:
        return True, "fake analyzer needs nothing"

    def info(self) -> dict:
        return {"backend": self.backend, "model_version": self.model_version, "models": ["fake"]}

    def _analyze_batch(self, items):
        results = []
        for title, artist, lyrics, user_id in items:
            if self.delay:
                time.sleep(self.delay)
            with self._calls_lock:
                FakeAnalyzer.calls += 1
            digest = hashlib.sha256(" ".join(lyrics.lower().split()).encode()).digest()
            score = float(digest[0] % 101)
            verdict = next(name for edge, name in VERDICTS if score >= edge)
            results.append(AnalysisResult(
                title=title, artist=artist, lyrics_text=lyrics, processed_text=lyrics.lower(),
                content_analysis={
                    "concern_flags": [{"type": "Profanity", "category": "Profanity",
                                       "severity": "high", "confidence": 0.9,
                                       "description": "fake flag"}] if score < 40 else [],
                    "safety_assessment": {"is_toxic": score < 40},
                    "total_penalty": 100 - score,
                    "concern_level": concern_level(score),
                },
                biblical_analysis={
                    "themes": [{"theme": "Hope & Encouragement", "score": 0.8,
                                "category": "character_spiritual", "points": 6,
                                "detection_method": "fake"}],
                    "supporting_scripture": [{"reference": "Psalm 23:4", "text": None,
                                              "theme": "Hope & Encouragement"}],
                    "biblical_themes_count": 1,
                },
                model_analysis={
                    "sentiment": {"scores": [{"label": "positive", "score": 1.0}],
                                  "primary": {"label": "positive", "score": 1.0}},
                    "emotions": {"scores": [{"label": "joy", "score": 1.0}],
                                 "primary": {"label": "joy", "score": 1.0}},
                    "content_safety": {"scores": [{"label": "toxic", "score": 0.0}],
                                       "primary": {"label": "non_toxic", "score": 1.0},
                                       "is_toxic": False},
                    "framework": {"verdict": verdict, "recommendation": verdict,
                                  "verdict_probabilities": {verdict: 1.0},
                                  "formation_risk": "low", "narrative_voice": "artist",
                                  "lament_filter_applied": False, "confidence": 0.9,
                                  "needs_review": False, "doctrinal_clarity": "clear"},
                },
                scoring_results={
                    "final_score": score, "explanation": f"fake analysis scored {score:.0f}",
                    "quality_level": quality_level(score), "component_scores": {"fake": score},
                    "verdict_summary": verdict, "formation_guidance": "",
                    "theological_weighting": 1.0, "formational_penalty": 0.0,
                },
                processing_time=self.delay, user_id=user_id,
                configuration_snapshot=self.snapshot(),
            ))
        return results
