"""Stateless analysis: lyrics in, `AnalysisResult.to_dict()` out (nothing about the song is stored).

Results of stored songs' analyses are reused when the lyrics and model version match (unless
`force`); the analyzer is loaded on first use and a missing model answers 503.
"""

from flask import current_app

from app.api import Blueprint, analysis_service
from app.schemas import AnalysisResultSchema, AnalyzeSchema, BatchAnalyzeSchema, BatchResultSchema

blp = Blueprint("analyze", __name__, description="Analyse lyrics given inline")


@blp.route("/api/analyze", methods=["POST"])
@blp.arguments(AnalyzeSchema)
@blp.response(200, AnalysisResultSchema)
def analyze(args):
    """Analyse one song's lyrics."""
    force = args.pop("force")
    return analysis_service().analyze_batch([args], force, _timeout())[0].to_dict()


@blp.route("/api/analyze/batch", methods=["POST"])
@blp.arguments(BatchAnalyzeSchema)
@blp.response(200, BatchResultSchema)
def analyze_batch(args):
    """Analyse up to MAX_BATCH_SIZE songs (INLINE_MAX_CHARS characters of lyrics), in order."""
    results = analysis_service().analyze_batch(args["songs"], args["force"], _timeout())
    return {"results": [result.to_dict() for result in results], "count": len(results)}


def _timeout() -> float:
    return current_app.config["REQUEST_TIMEOUT_SECONDS"]
