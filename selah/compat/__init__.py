"""What the web app imports, with Selah inside: one import line switches it.

- `HuggingFaceAnalyzer`: the legacy analyzer's name, no-argument constructor, `get_instance()`
  and `reset_cache()`, serving the Selah backend the environment configures (`selah.settings`).
- The analyzer-cache helpers: `get_shared_analyzer`, `is_analyzer_ready`, `get_analyzer_info`
  (`status: ready` and the model list once loaded), `clear_analyzer_cache`,
  `initialize_analyzer`, `preflight`; inside any Flask app or none.
- `SimplifiedChristianAnalysisService`: the web app's analysis service, returning and storing
  Selah's results as Selah computed them.
- `AnalysisResult`, `GPTOSSChristianAnalyzer` and the two exceptions callers catch.

README.md, "Switching the web app to Selah", gives the lines to change.
"""

from selah.analyzers import (
    AnalysisResult,
    AnalyzerRateLimited,
    AnalyzerUnavailable,
    GPTOSSChristianAnalyzer,
    clear_analyzer_cache,
    get_analyzer_info,
    get_shared_analyzer,
    initialize_analyzer,
    is_analyzer_ready,
    preflight,
)
from selah.compat.analyzer import HuggingFaceAnalyzer
from selah.compat.service import HostTablesNotFound, SimplifiedChristianAnalysisService

__all__ = [
    "AnalysisResult", "AnalyzerRateLimited", "AnalyzerUnavailable", "GPTOSSChristianAnalyzer",
    "HostTablesNotFound", "HuggingFaceAnalyzer", "SimplifiedChristianAnalysisService",
    "clear_analyzer_cache", "get_analyzer_info", "get_shared_analyzer", "initialize_analyzer",
    "is_analyzer_ready", "preflight",
]
