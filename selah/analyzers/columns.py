"""A result as the web app's `analysis_results` columns (contract.md, section 3).

One mapping for both stores: the service's own table (`app.services.analysis.apply_result` adds
its cache and lease columns) and the web app's table, written by
`selah.compat.SimplifiedChristianAnalysisService`. Every value is Selah's own: the score is the
model's final score (no second penalty), the scripture the model's, the v3.1 columns from the
result's framework.
"""

from typing import Any

from selah.analyzers.base import AnalysisResult, concern_level


def legacy_columns(result: AnalysisResult) -> dict[str, Any]:
    """Column name -> value for one row of `analysis_results` (no ids, no timestamps)."""
    scoring, content = result.scoring_results, result.content_analysis
    biblical, framework = result.biblical_analysis, result.model_analysis.get("framework") or {}
    score = float(scoring.get("final_score", 0.0))
    themes = list(biblical.get("themes", []))
    flags = list(content.get("concern_flags", []))
    level = content.get("concern_level")
    return {
        "status": "completed" if result.is_successful() else "failed",
        "score": score,
        "concern_level": level if level and level != "unknown" else concern_level(score),
        "explanation": scoring.get("explanation"),
        "themes": themes,
        "concerns": flags,
        "purity_flags_details": [f for f in flags if f.get("severity") in ("high", "critical")],
        "positive_themes_identified": [t for t in themes if t.get("points", 0) > 0],
        "biblical_themes": [t for t in themes if t.get("category") != "negative"],
        "supporting_scripture": list(biblical.get("supporting_scripture", [])),
        "problematic_content": {
            "negative_themes": [t for t in themes if t.get("category") == "negative"],
            "concern_flags": flags,
            "safety_assessment": content.get("safety_assessment", {}),
        },
        "verdict": framework.get("verdict"),
        "purity_score": score,
        "formation_risk": framework.get("formation_risk"),
        "doctrinal_clarity": framework.get("doctrinal_clarity"),
        "confidence": framework.get("confidence"),
        "needs_review": framework.get("needs_review"),
        "narrative_voice": framework.get("narrative_voice"),
        "lament_filter_applied": framework.get("lament_filter_applied"),
        "framework_data": framework or None,
        "error_message": result.error_message,
    }
