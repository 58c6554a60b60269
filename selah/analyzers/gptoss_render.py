"""Turn one song's decoded student heads into the contract's `AnalysisResult`.

The prediction comes from `selah.inference.decode_logits`: verdict and its probabilities
(`verdict_probs`), raw and band-clamped score, and `heads[name]` probabilities for every head.
Everything here is a pure function of that prediction and the checkpoint's tables, so the same
prediction renders the same result.

The final score is the score head's output clamped into the predicted verdict's band (the verdict
head decides the tier). `total_penalty`, `theological_weighting`, `formational_penalty` and
`component_scores` are descriptive sums of the catalogue points of what was detected; they explain
the score but do not compute it.

Evidence (when the prediction carries `line_logits`, `selah.evidence`): every theme and concern
flag gets `evidence`, the lyric lines behind it (`{lines, text, strength}`); the explanation names
their line numbers and the framework data keeps them as `evidence: {themes, concerns}`.
Supporting scripture: first the verses the lyric quotes or paraphrases (`selah.quotes`, `source:
"quoted"`, with `lines` and `match`), then the verses of the detected themes (`source: "theme"`),
looked up, not predicted: `selah.scripture_topics` (checked to speak to each theme), else the
checkpoint's table; verse text from pythonbible's ASV (None when unavailable).
"""

from functools import lru_cache
from typing import Sequence

from selah.analyzers.base import AnalysisResult, concern_level, quality_level
from selah.evidence import evidence_for, lines_phrase
from selah.schema import SEVERITIES as SEVERITY_ORDER  # stdlib-only: no training stack
from selah.scripture_topics import references_for

DETECTION_METHOD = "student_multilabel_head"
VERDICT_WORDS = {
    "freely_listen": "free to listen",
    "context_required": "fine with context",
    "caution_limit": "listen with caution",
    "avoid_formation": "avoid for formation",
}
GUIDANCE = {
    "freely_listen": "Fit for regular listening and worship; its message can shape faith well.",
    "context_required": "Fine for most listeners with discernment: talk through the themes and "
                        "concerns noted here.",
    "caution_limit": "Limit repeated listening, especially for young or new believers, and weigh "
                     "the concerns noted here.",
    "avoid_formation": "Not suited to spiritual formation; avoid it for regular listening.",
}


@lru_cache(maxsize=4096)
def verse_text(reference: str) -> str | None:
    """ASV text of a canonical reference, or None when pythonbible cannot give it."""
    try:
        from selah.scripture import verse_text as lookup

        return lookup(reference)
    except ImportError:  # pythonbible missing: references still show, without text
        return None


def _clean(text: str) -> str:
    """The lyrics as the model read them (a lone surrogate becomes U+FFFD), trimmed."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").strip()


def _distribution(probabilities: dict) -> dict:
    """`{scores: [{label, score}, ...], primary: {label, score}}` over every class, in order."""
    scores = [{"label": label, "score": round(p, 4)} for label, p in probabilities.items()]
    primary = max(scores, key=lambda item: item["score"])
    return {"scores": scores, "primary": dict(primary)}


def _evidence(prediction: dict, lyrics: str, head: str, name: str) -> list[dict] | None:
    """The evidence lines of one theme or concern, or None when the prediction has none."""
    if "line_logits" not in prediction:
        return None
    column = list(prediction["heads"][head]).index(name)
    return evidence_for(prediction["line_logits"], head, column,
                        float(prediction["logits"][head][column]), lyrics)


def themes_of(prediction: dict, threshold: float, lyrics: str = "") -> list[dict]:
    """Themes at or above `threshold`, most probable first (with their `evidence` lines when
    the prediction carries them)."""
    from selah import schema

    found = [(p, name) for name, p in prediction["heads"]["themes"].items()
             if p >= threshold and name in schema.THEME_BY_NAME]
    themes = []
    for p, name in sorted(found, key=lambda item: (-item[0], item[1])):
        theme = {"theme": name, "score": round(p, 4),
                 "category": schema.THEME_BY_NAME[name].category,
                 "points": schema.THEME_BY_NAME[name].points, "detection_method": DETECTION_METHOD}
        if (lines := _evidence(prediction, lyrics, "themes", name)) is not None:
            theme["evidence"] = lines
        themes.append(theme)
    return themes


def concern_flags_of(prediction: dict, threshold: float, lyrics: str = "") -> list[dict]:
    """Concern categories at or above `threshold` with their most probable severity (and their
    `evidence` lines when the prediction carries them)."""
    severities = prediction["heads"].get("concern_severity", {})
    flags = []
    for category, p in sorted(prediction["heads"]["concerns"].items(),
                              key=lambda item: (-item[1], item[0])):
        if p < threshold:
            continue
        levels = severities.get(category) or {"medium": 1.0}
        severity = max(SEVERITY_ORDER, key=lambda s: (levels.get(s, 0.0), -SEVERITY_ORDER.index(s)))
        flag = {"type": category, "category": category, "severity": severity,
                "confidence": round(p, 4),
                "description": f"{category}: {severity} concern detected in the lyrics "
                               f"(probability {p:.0%})"}
        if (lines := _evidence(prediction, lyrics, "concerns", category)) is not None:
            flag["evidence"] = lines
            if lines:
                flag["description"] += f", {lines_phrase(lines)}"
        flags.append(flag)
    return flags


def scripture_for(themes: list[dict], table: dict, limit: int,
                  quotes: Sequence[dict] = ()) -> list[dict]:
    """The verses the lyric quotes (`quotes`, `source: "quoted"`) first, then up to `limit`
    references for the themes (`source: "theme"`): each theme's best first, then second, ..."""
    chosen = [dict(quote) for quote in quotes]
    seen = {quote["reference"] for quote in quotes}
    tables = {t["theme"]: references_for(t["theme"], table) for t in themes}
    depth = max((len(references) for references in tables.values()), default=0)
    added = 0
    for rank in range(depth):
        for theme in themes:
            references = tables[theme["theme"]]
            if rank < len(references) and references[rank] not in seen and added < limit:
                seen.add(references[rank])
                added += 1
                chosen.append({"reference": references[rank], "text": verse_text(references[rank]),
                               "theme": theme["theme"], "source": "theme"})
    return chosen


def _named(item: dict, label: str) -> str:
    where = lines_phrase(item.get("evidence") or ())
    return f"{label} ({where})" if where else label


def explanation_of(verdict: str, plan: str, confidence: float, score: float, themes: list[dict],
                   flags: list[dict], voice: str, review: bool,
                   quotes: Sequence[dict] = ()) -> str:
    """A few sentences written from the predictions, naming the lines behind each theme and
    concern when the result has evidence, and the verses the lyric quotes."""
    positive = [t for t in themes if t["category"] != "negative"][:3]
    parts = [f"{plan} ({VERDICT_WORDS[verdict]}), score {score:.0f}/100 with "
             f"{confidence:.0%} confidence in the verdict."]
    parts.append("Main themes: " + ", ".join(_named(t, t["theme"]) for t in positive) + "."
                 if positive else "No clear biblical theme was detected.")
    parts.append("Concerns: " + ", ".join(
        _named(f, f"{f['category']}: {f['severity']}") if f.get("evidence")
        else f"{f['category']} ({f['severity']})" for f in flags[:4])
        + "." if flags else "No concerns were flagged.")
    if quotes:
        parts.append("Quotes scripture: " + ", ".join(
            f"{q['reference']} ({lines_phrase([q])})" for q in quotes) + ".")
    parts.append(f"Narrative voice: {voice}.")
    if review:
        parts.append("Flagged for review: the score is near a band edge or the verdict is "
                     "uncertain.")
    return " ".join(parts)


def render(title: str, artist: str, lyrics: str, user_id: int | None, prediction: dict,
           context: dict, processing_time: float, quotes: Sequence = ()) -> AnalysisResult:
    """The full result for one song. `context`: scripture table, decoding thresholds, snapshot;
    `quotes`: the `selah.quotes.Quote`s found in the lyrics."""
    from selah import schema
    from selah.schema import score_band

    decoding = context["decoding"]
    probabilities = prediction["heads"]
    verdict, confidence = prediction["verdict"], prediction["confidence"]
    score = round(prediction["score"], 1)
    plan = schema.PLAN_NAMES[verdict]
    review = schema.needs_review(score, confidence)
    themes = themes_of(prediction, decoding.get("theme_threshold", 0.5), lyrics)
    flags = concern_flags_of(prediction, decoding.get("concern_threshold", 0.5), lyrics)
    quoted = [quote.to_dict() for quote in quotes]
    positive_points = sum(t["points"] for t in themes if t["points"] > 0)
    negative_points = sum(-t["points"] for t in themes if t["points"] < 0)
    penalty = sum(abs(schema.THEME_BY_NAME[f["category"]].points) for f in flags)
    safety = probabilities["safety"]
    toxic = safety.get("toxic", 0.0) > 0.5
    risk = max(probabilities["formation_risk"], key=probabilities["formation_risk"].get)
    voice = max(probabilities["narrative_voice"], key=probabilities["narrative_voice"].get)
    lament = probabilities["lament_filter"].get("applied", 0.0) > 0.5
    guidance = GUIDANCE[verdict] + (" Lament filter applied: honest grief or struggle is read as "
                                    "lament, not as a concern by itself." if lament else "")
    framework = {
        "verdict": verdict, "recommendation": plan,
        "verdict_probabilities": {v: round(p, 4) for v, p in
                                  prediction["verdict_probs"].items()},
        "formation_risk": risk, "narrative_voice": voice, "lament_filter_applied": lament,
        "confidence": round(confidence, 4), "needs_review": review,
        "raw_score": round(prediction["raw_score"], 2),
        "doctrinal_clarity": schema.doctrinal_clarity([t["theme"] for t in themes],
                                                      [f["category"] for f in flags]),
        "doctrinal_clarity_source": "derived from the detected themes and concerns",
    }
    if "line_logits" in prediction:
        framework["evidence"] = {
            "themes": {t["theme"]: sorted({n for e in t["evidence"] for n in e["lines"]})
                       for t in themes},
            "concerns": {f["category"]: sorted({n for e in f["evidence"] for n in e["lines"]})
                         for f in flags},
            "quoted_scripture": {q["reference"]: q["lines"] for q in quoted},
        }
    return AnalysisResult(
        title=title, artist=artist, lyrics_text=lyrics, processed_text=_clean(lyrics),
        content_analysis={
            "concern_flags": flags,
            "safety_assessment": {
                "is_toxic": toxic, "toxicity": round(safety.get("toxic", 0.0), 4),
                "formation_risk": risk, "concern_count": len(flags),
                "highest_severity": max((f["severity"] for f in flags),
                                        key=SEVERITY_ORDER.index, default=None),
            },
            "total_penalty": penalty,
            "concern_level": concern_level(score),
        },
        biblical_analysis={
            "themes": themes,
            "supporting_scripture": scripture_for(themes, context["scripture"],
                                                  decoding.get("max_scripture", 3), quoted),
            "biblical_themes_count": len(themes),
        },
        model_analysis={
            "sentiment": _distribution(probabilities["sentiment"]),
            "emotions": _distribution(probabilities["emotion"]),
            "content_safety": {**_distribution(safety), "is_toxic": toxic},
            "framework": framework,
        },
        scoring_results={
            "final_score": score,
            "explanation": explanation_of(verdict, plan, confidence, score, themes, flags, voice,
                                          review, quoted),
            "quality_level": quality_level(score),
            "component_scores": {
                "model_score": round(prediction["raw_score"], 1),
                "verdict_band": list(score_band(verdict)),
                "verdict_confidence": round(confidence, 4),
                "positive_theme_points": positive_points,
                "negative_theme_points": negative_points,
                "concern_penalty": penalty,
            },
            "verdict_summary": f"{plan}: {VERDICT_WORDS[verdict]} (score {score:.0f}).",
            "formation_guidance": f"{guidance} Formation risk: {risk}.",
            "theological_weighting": float(positive_points),
            "formational_penalty": float(negative_points),
        },
        processing_time=processing_time,
        user_id=user_id,
        configuration_snapshot=dict(context["snapshot"]),
    )
