"""`LLMAnalyzer`: the legacy backend that asks an OpenAI-compatible server (backend name `llm`).

Settings (`app.config.Config`): `LLM_API_BASE_URL` (such as llama.cpp's `http://127.0.0.1:8080/v1`
or Ollama's `http://localhost:11434/v1`), `LLM_MODEL`, `LLM_API_KEY`, the sampling settings
`LLM_TEMPERATURE`, `LLM_TOP_P`, `LLM_MAX_TOKENS`, and `LLM_CHUNK_CHAR_LIMIT`, `LLM_TIMEOUT_SECONDS`,
`LLM_MAX_RETRIES`, `LLM_MAX_CONCURRENCY` for the transport (`llm_client`).

One `POST /chat/completions` per song, or per chunk when the lyrics are longer than
`LLM_CHUNK_CHAR_LIMIT` (split on line boundaries, the chunk answers merged: `merge`).
The answer is asked for as JSON under `llm_parse.answer_schema()` (json_schema, else json_object,
else plain, whichever the server accepts) and validated by `llm_parse.parse_answer`. An unusable
answer, a server that cannot be reached or refuses the request gives a complete error result
(`AnalysisResult.create_error`, the reason in `error_message`); a 429 raises the contract's
`AnalyzerRateLimited`. The result has the same shape as the gptoss backend's
(`gptoss_render`), with these differences:

- The final score is the mean stated score clamped into the verdict's band, so score and verdict
  agree (`component_scores.model_score` keeps the unclamped mean).
- Verdict probabilities come from the verdict token's logprobs when the server returns them,
  else from the stated confidence (`llm_parse`; `framework.verdict_probability_source` says
  which).
- The server gives no sentiment, emotion or toxicity scores: the distributions put all mass on
  the label the model named (uniform, primary "neutral", when it named none), and the song is
  toxic when a concern is critical or Profanity is high or worse.
- Scripture references are canonicalised (invalid ones dropped) and their text is the ASV's,
  never the model's.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Mapping

from selah import schema
from selah.analyzers.base import (
    AnalysisResult,
    AnalyzerRateLimited,
    AnalyzerUnavailable,
    BaseAnalyzer,
    concern_level,
    quality_level,
)
from selah.analyzers.gptoss_render import (
    GUIDANCE,
    VERDICT_WORDS,
    _clean,
    _distribution,
    explanation_of,
    verse_text,
)
from selah.analyzers.llm_client import (
    LLMClient,
    LLMRequestRejected,
    LLMTransportError,
    safe_url,
)
from selah.analyzers.llm_parse import (
    SYSTEM_PROMPT,
    AnswerError,
    ChunkAnswer,
    answer_schema,
    parse_answer,
    split_lyrics,
    user_prompt,
    worst,
)

DETECTION_METHOD = "llm"
# The defaults of app.config.Config, for callers that pass a partial mapping.
DEFAULTS = {
    "LLM_API_BASE_URL": "", "LLM_MODEL": "", "LLM_API_KEY": "", "LLM_TEMPERATURE": 0.3,
    "LLM_TOP_P": 0.9, "LLM_MAX_TOKENS": 900, "LLM_CHUNK_CHAR_LIMIT": 3500,
    "LLM_TIMEOUT_SECONDS": 120.0, "LLM_MAX_RETRIES": 2, "LLM_MAX_CONCURRENCY": 4,
}
# Formation risk when the model names none: from the verdict tier.
RISK_OF_VERDICT = {"freely_listen": "low", "context_required": "low", "caution_limit": "medium",
                   "avoid_formation": "high"}
SETUP_HINT = ("point it at an OpenAI-compatible server's /v1, such as llama.cpp's "
              "http://127.0.0.1:8080/v1 or Ollama's http://localhost:11434/v1")


def _setting(config: Mapping[str, Any], name: str):
    value = config.get(name)
    return DEFAULTS[name] if value is None else value


def client_for(config: Mapping[str, Any]) -> LLMClient:
    """The client these settings describe (no request made); `AnalyzerUnavailable` when
    `LLM_API_BASE_URL` or `LLM_MODEL` is empty."""
    base, model = str(_setting(config, "LLM_API_BASE_URL")), str(_setting(config, "LLM_MODEL"))
    if not base.strip():
        raise AnalyzerUnavailable(f"LLM_API_BASE_URL is not set: {SETUP_HINT}")
    if not base.startswith(("http://", "https://")):
        raise AnalyzerUnavailable(f"LLM_API_BASE_URL must start with http:// or https://, got "
                                  f"{safe_url(base)!r}")
    if not model.strip():
        raise AnalyzerUnavailable("LLM_MODEL is not set: name a model the server lists at "
                                  "GET /models")
    return LLMClient(base.strip(), model.strip(), str(_setting(config, "LLM_API_KEY")),
                     float(_setting(config, "LLM_TIMEOUT_SECONDS")),
                     int(_setting(config, "LLM_MAX_RETRIES")),
                     int(_setting(config, "LLM_MAX_CONCURRENCY")))


class LLMAnalyzer(BaseAnalyzer):
    """Analysis by a served LLM through the OpenAI chat-completions API (backend `llm`)."""

    backend: ClassVar[str] = "llm"

    def __init__(self, client: LLMClient, temperature: float = 0.3, top_p: float = 0.9,
                 max_tokens: int = 900, chunk_char_limit: int = 3500):
        self.client = client
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        self.chunk_char_limit = chunk_char_limit
        self.model_version = f"llm-{client.model}"
        self._schema = answer_schema()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LLMAnalyzer":
        """The analyzer for these settings (cheap: builds the client, asks the server nothing)."""
        return cls(client_for(config), float(_setting(config, "LLM_TEMPERATURE")),
                   float(_setting(config, "LLM_TOP_P")), int(_setting(config, "LLM_MAX_TOKENS")),
                   int(_setting(config, "LLM_CHUNK_CHAR_LIMIT")))

    @classmethod
    def preflight_config(cls, config: Mapping[str, Any]) -> tuple[bool, str]:
        """`(ok, message)`: the server answers `GET /models` and lists `LLM_MODEL`."""
        try:
            client = client_for(config)
            listed = client.models()
        except (AnalyzerUnavailable, LLMTransportError, LLMRequestRejected,
                AnalyzerRateLimited) as exc:
            return False, str(exc)
        where = safe_url(client.base_url)
        if client.model not in listed:
            shown = ", ".join(listed[:10]) or "no models"
            return False, (f"LLM_MODEL {client.model!r} is not served by {where} (it lists "
                           f"{shown}); set LLM_MODEL to one of them")
        return True, f"model {client.model!r} is served by {where}"

    def info(self) -> dict:
        """Backend, version, the model and the server it asks."""
        kind, logprobs = self.client.mode
        return {"backend": self.backend, "model_version": self.model_version,
                "models": [self.client.model], "base_url": safe_url(self.client.base_url),
                "response_format": kind, "logprobs": logprobs}

    def snapshot(self) -> dict:
        """What produced a result: backend, server, model and sampling (no API key)."""
        return {"backend": self.backend, "model_version": self.model_version,
                "model_id": self.client.model, "base_url": safe_url(self.client.base_url),
                "checkpoint_sha256": None, "quantization": None,
                "schema_version": schema.SCHEMA_VERSION, **self.sampling,
                "chunk_char_limit": self.chunk_char_limit}

    # -- serving ---------------------------------------------------------------------------------

    def _analyze_batch(self, items: list[tuple[str, str, str, int | None]]) -> list:
        if len(items) == 1:
            return [self._analyze_one(*items[0])]
        # The semaphore in the client bounds requests in flight; these threads only wait on it.
        with ThreadPoolExecutor(min(len(items), self.client.max_concurrency)) as pool:
            futures = [pool.submit(self._analyze_one, *item) for item in items]
            return [future.result() for future in futures]

    def _ask(self, title: str, artist: str, chunk: str, part: int, parts: int) -> ChunkAnswer:
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": user_prompt(title, artist, chunk, part, parts)}]
        reply, kind, _ = self.client.chat(messages, self._schema, **self.sampling)
        try:
            answer = parse_answer(reply, constrained=kind != "none")
        except AnswerError as exc:
            where = f"chunk {part} of {parts}: " if parts > 1 else ""
            cut = _finish_reason(reply) == "length"
            raise AnswerError(f"{where}{exc}" + (
                f" (the answer was cut at LLM_MAX_TOKENS={self.sampling['max_tokens']})"
                if cut else "")) from None
        answer.extras["response_format"] = kind
        return answer

    def _analyze_one(self, title: str, artist: str, lyrics: str, user_id: int | None):
        started = time.perf_counter()
        chunks = split_lyrics(lyrics, self.chunk_char_limit)
        try:
            answers = [self._ask(title, artist, chunk, i + 1, len(chunks))
                       for i, chunk in enumerate(chunks)]
            return render(title, artist, lyrics, user_id, merge(answers), len(chunks),
                          self.snapshot(), time.perf_counter() - started)
        except AnalyzerRateLimited:
            raise
        except (AnswerError, LLMTransportError, LLMRequestRejected) as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - the contract: report, never raise
            message = f"{type(exc).__name__}: {exc}"
        return AnalysisResult.create_error(title, artist, lyrics, message, user_id,
                                           time.perf_counter() - started, self.snapshot())


def _most_common(values: list):
    present = [v for v in values if v is not None]
    return max(present, key=present.count) if present else None


def merge(answers: list[ChunkAnswer]) -> ChunkAnswer:
    """One answer from the chunks' (the legacy rule): themes by highest confidence, concerns by
    worst severity, score by mean; verdict probabilities averaged, the verdict the chunks' common
    one, else the most probable on average."""
    if len(answers) == 1:
        return answers[0]
    n = len(answers)
    probabilities = {v: sum(a.probabilities[v] for a in answers) / n for v in schema.VERDICTS}
    stated = {a.verdict for a in answers}
    verdict = stated.pop() if len(stated) == 1 else max(
        schema.VERDICTS, key=lambda v: (probabilities[v], -schema.VERDICTS.index(v)))
    themes: dict[str, float] = {}
    concerns: dict[str, tuple[str, float, str]] = {}
    scripture: list[tuple[str, str | None]] = []
    for answer in answers:
        for name, confidence in answer.themes.items():
            themes[name] = max(confidence, themes.get(name, 0.0))
        for category, concern in answer.concerns.items():
            concerns[category] = worst(concerns.get(category), concern)
        scripture += [s for s in answer.scripture if s[0] not in [r for r, _ in scripture]]
    extras = {name: _most_common([a.extras.get(name) for a in answers]) for name in
              ("narrative_voice", "doctrinal_clarity", "sentiment", "emotion")}
    risks = [a.extras.get("formation_risk") for a in answers if a.extras.get("formation_risk")]
    extras["formation_risk"] = max(risks, key=schema.FORMATION_RISKS.index) if risks else None
    extras["lament_filter_applied"] = any(a.extras.get("lament_filter_applied") for a in answers)
    for name in ("summary", "guidance"):
        extras[name] = next((a.extras[name] for a in answers if a.extras.get(name)), "")
    extras["stated_confidence"] = sum(a.extras["stated_confidence"] for a in answers) / n
    sources = {a.source for a in answers}
    return ChunkAnswer(verdict, sum(a.score for a in answers) / n, probabilities[verdict],
                       probabilities, sources.pop() if len(sources) == 1 else "mixed", themes,
                       concerns, scripture, extras, [d for a in answers for d in a.dropped])


def _finish_reason(reply: Any) -> str | None:
    try:
        return reply["choices"][0].get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _named(labels: tuple[str, ...], label: str | None) -> dict:
    """A distribution with all mass on `label`; uniform with primary "neutral" when None."""
    if label is None:
        uniform = _distribution({name: 1.0 / len(labels) for name in labels})
        uniform["primary"] = {"label": "neutral", "score": round(1.0 / len(labels), 4)}
        return uniform
    return _distribution({name: float(name == label) for name in labels})


def render(title: str, artist: str, lyrics: str, user_id: int | None, answer: ChunkAnswer,
           chunks: int, snapshot: dict, processing_time: float) -> AnalysisResult:
    """The full result for one song from its (merged) validated answer."""
    verdict, confidence, extras = answer.verdict, answer.confidence, answer.extras
    low, high = schema.score_band(verdict)
    score = round(min(max(answer.score, low), high), 1)
    plan = schema.PLAN_NAMES[verdict]
    review = schema.needs_review(score, confidence)
    themes = [{"theme": name, "score": round(c, 4),
               "category": schema.THEME_BY_NAME[name].category,
               "points": schema.THEME_BY_NAME[name].points, "detection_method": DETECTION_METHOD}
              for name, c in sorted(answer.themes.items(), key=lambda kv: (-kv[1], kv[0]))]
    flags = [{"type": category, "category": category, "severity": severity,
              "confidence": round(c, 4),
              "description": explanation or f"{category}: {severity} concern named by the model"}
             for category, (severity, c, explanation) in sorted(
                 answer.concerns.items(),
                 key=lambda kv: (-schema.SEVERITIES.index(kv[1][0]), kv[0]))]
    first_theme = themes[0]["theme"] if themes else None
    scripture = [{"reference": ref, "text": verse_text(ref), "theme": theme or first_theme}
                 for ref, theme in answer.scripture]
    positive = sum(t["points"] for t in themes if t["points"] > 0)
    negative = sum(-t["points"] for t in themes if t["points"] < 0)
    penalty = sum(abs(schema.THEME_BY_NAME[f["category"]].points) for f in flags)
    toxic = any(f["severity"] == "critical" or (
        f["category"] == "Profanity" and f["severity"] in ("high", "critical")) for f in flags)
    risk = extras.get("formation_risk") or RISK_OF_VERDICT[verdict]
    voice = extras.get("narrative_voice") or "unknown"
    lament = bool(extras.get("lament_filter_applied"))
    guidance = extras.get("guidance") or GUIDANCE[verdict]
    if lament:
        guidance += (" Lament filter applied: honest grief or struggle is read as lament, not as "
                     "a concern by itself.")
    framework = {
        "verdict": verdict, "recommendation": plan,
        "verdict_probabilities": {v: round(p, 4) for v, p in answer.probabilities.items()},
        "verdict_probability_source": answer.source,
        "formation_risk": risk, "narrative_voice": voice, "lament_filter_applied": lament,
        "confidence": round(confidence, 4), "needs_review": review,
        "raw_score": round(answer.score, 2),
        "doctrinal_clarity": extras.get("doctrinal_clarity") or schema.doctrinal_clarity(
            [t["theme"] for t in themes], [f["category"] for f in flags]),
        "doctrinal_clarity_source": "stated by the model" if extras.get("doctrinal_clarity")
        else "derived from the detected themes and concerns",
        "stated_confidence": round(extras.get("stated_confidence", confidence), 4),
        "chunks": chunks, "response_format": extras.get("response_format"),
        "dropped": answer.dropped[:20],
    }
    summary = extras.get("summary") or f"{plan}: {VERDICT_WORDS[verdict]} (score {score:.0f})."
    return AnalysisResult(
        title=title, artist=artist, lyrics_text=lyrics, processed_text=_clean(lyrics),
        content_analysis={
            "concern_flags": flags,
            "safety_assessment": {
                "is_toxic": toxic, "formation_risk": risk, "concern_count": len(flags),
                "highest_severity": flags[0]["severity"] if flags else None,
            },
            "total_penalty": penalty,
            "concern_level": concern_level(score),
        },
        biblical_analysis={"themes": themes, "supporting_scripture": scripture,
                           "biblical_themes_count": len(themes)},
        model_analysis={
            "sentiment": _named(schema.SENTIMENT_LABELS, extras.get("sentiment")),
            "emotions": _named(schema.EMOTION_LABELS, extras.get("emotion")),
            "content_safety": {**_distribution({"non_toxic": float(not toxic),
                                                "toxic": float(toxic)}), "is_toxic": toxic},
            "framework": framework,
        },
        scoring_results={
            "final_score": score,
            "explanation": explanation_of(verdict, plan, confidence, score, themes, flags, voice,
                                          review),
            "quality_level": quality_level(score),
            "component_scores": {
                "model_score": round(answer.score, 1), "verdict_band": [low, high],
                "verdict_confidence": round(confidence, 4),
                "positive_theme_points": positive, "negative_theme_points": negative,
                "concern_penalty": penalty,
            },
            "verdict_summary": summary,
            "formation_guidance": f"{guidance} Formation risk: {risk}.",
            "theological_weighting": float(positive),
            "formational_penalty": float(negative),
        },
        processing_time=processing_time, user_id=user_id,
        configuration_snapshot=dict(snapshot),
    )
