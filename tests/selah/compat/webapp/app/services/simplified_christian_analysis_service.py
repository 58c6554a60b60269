"""The stand-in web app's own analysis service: it re-scores what the analyzer said.

Its regex concern detector takes 15 points off per concern (at most 45) and caps such a song at
69, and its scripture mapper replaces the analyzer's scripture (contract.md, backends.md).
"""

import re

from app.services.analyzer_cache import get_shared_analyzer

CONCERNS = {"profanity": re.compile(r"\b(damn|hell)\b", re.I),
            "violence": re.compile(r"\b(kill|gun|blood)\b", re.I)}
MAPPED_SCRIPTURE = [{"reference": "Philippians 4:8", "text": None, "theme": "mapper"}]


class SimplifiedChristianAnalysisService:
    def __init__(self):
        self.hf_analyzer = get_shared_analyzer()
        self.ai_analyzer = self.hf_analyzer

    def analyze_song(self, title, artist, lyrics, user_id=None):
        result = self.hf_analyzer.analyze_song(title, artist, lyrics)
        found = [name for name, pattern in CONCERNS.items() if pattern.search(lyrics or "")]
        score = result.scoring_results["final_score"]
        if found:
            score = max(0.0, score - min(45, 15 * len(found)))
            score = min(score, 69.0)
        result.scoring_results["final_score"] = score
        result.biblical_analysis["supporting_scripture"] = list(MAPPED_SCRIPTURE)
        return result

    def analyze_songs_batch(self, songs_data):
        return [self.analyze_song(s["title"], s["artist"], s["lyrics"]) for s in songs_data]
