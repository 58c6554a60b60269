"""A small client for an OpenAI-compatible server (llama.cpp, vLLM, Ollama): the `llm` backend's
transport, on the standard library only (`urllib.request`, `json`).

- Every request waits at most `timeout` seconds for each socket operation (urllib's timeout).
- Timeouts, refused connections and 5xx answers are retried `max_retries` times with exponential
  backoff (`backoff`, 2x, 4x, ... capped at `MAX_BACKOFF_SECONDS`); what still fails becomes
  `LLMTransportError`, which the analyzer turns into an error result.
- 429 is never retried here: it raises the contract's `AnalyzerRateLimited` with the server's
  Retry-After (seconds or an HTTP date; `DEFAULT_RETRY_AFTER` when it sends none), so the caller
  backs off instead of this process hammering the server.
- Other 4xx raise `LLMRequestRejected` (status and the first part of the body), and so does a 5xx
  that is a request-validation error (llama-cpp-python's server answers an unknown
  `response_format` type with 500): `chat` uses it to step down its structured-output ladder.
- At most `max_concurrency` requests are in flight per process, across every client with the same
  limit (one `threading.BoundedSemaphore` per limit, created once).

The API key travels only in the Authorization header; no message, log line or snapshot of this
module contains it, and `safe_url` drops any user:password part of the base URL.
"""

import email.utils
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any

from selah.analyzers.base import AnalyzerRateLimited

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 5.0
MAX_BACKOFF_SECONDS = 8.0
# Structured-output modes, tried in this order until the server accepts one; the one that worked
# is remembered for the client's lifetime. "logprobs" asks for the verdict's token distribution.
FORMAT_LADDER = (
    ("json_schema", True), ("json_object", True), ("none", True), ("none", False),
)
# 4xx statuses that mean "this request shape is refused" (step down the ladder); 401/403/404 are
# not about the shape, so trying other shapes would only hide them.
SHAPE_REJECTIONS = frozenset({400, 405, 406, 409, 415, 422})
# llama-cpp-python's server answers a request field it does not know (response_format
# json_schema in 0.3.36) with HTTP 500 and a pydantic validation error: a refusal of the shape,
# not a failure worth retrying.
_SHAPE_ERROR = re.compile(r"validation error|literal_error|response_format|json_schema|logprobs",
                          re.IGNORECASE)

_semaphores: dict[int, threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()


def shared_semaphore(limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore of `limit` concurrent requests (one per distinct limit)."""
    with _semaphores_lock:
        if limit not in _semaphores:
            _semaphores[limit] = threading.BoundedSemaphore(limit)
        return _semaphores[limit]


def safe_url(url: str) -> str:
    """`url` without any user:password part (what snapshots and messages show)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def retry_after_seconds(value: str | None, default: float = DEFAULT_RETRY_AFTER) -> float:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class LLMTransportError(RuntimeError):
    """The server could not be reached or kept failing (after retries)."""


class LLMRequestRejected(RuntimeError):
    """The server refused the request with a 4xx other than 429."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"the LLM server refused the request: HTTP {status}: {detail}")
        self.status = status
        # True when the refusal is of the request's shape (worth another structured-output mode).
        self.shape = status in SHAPE_REJECTIONS or bool(_SHAPE_ERROR.search(detail))


class LLMClient:
    """Requests to one OpenAI-compatible server for one model."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 120.0,
                 max_retries: int = 2, max_concurrency: int = 4, backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_concurrency = max_concurrency
        self._semaphore = shared_semaphore(max_concurrency)
        # Index into FORMAT_LADDER of the first mode the server accepted (0 until told otherwise).
        self._mode = 0
        self._mode_lock = threading.Lock()

    @property
    def mode(self) -> tuple[str, bool]:
        """`(response_format kind, logprobs asked)` this client sends now."""
        return FORMAT_LADDER[self._mode]

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _once(self, method: str, path: str, body: dict | None) -> Any:
        """One HTTP exchange: the parsed JSON answer, or a classified exception."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers=self._headers())
        try:
            with self._semaphore, urllib.request.urlopen(request, timeout=self.timeout) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as exc:
            with exc:  # closes the error's response body
                detail = exc.read(2000).decode("utf-8", "replace").strip()
                status, retry_after = exc.code, exc.headers.get("Retry-After")
            if status == 429:
                seconds = retry_after_seconds(retry_after)
                raise AnalyzerRateLimited(
                    f"the LLM server is rate limiting requests (HTTP 429); retry after "
                    f"{seconds:g} s", seconds) from None
            if status >= 500 and not _SHAPE_ERROR.search(detail):
                raise _Retryable(f"HTTP {status}: {detail[:200]}") from None
            raise LLMRequestRejected(status, detail[:300]) from None
        except TimeoutError as exc:
            raise _Retryable(f"no answer within {self.timeout:g} s ({exc})") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise _Retryable(f"no answer within {self.timeout:g} s") from None
            raise _Retryable(f"cannot connect to {safe_url(self.base_url)}: {reason}") from None
        except (ConnectionError, OSError) as exc:  # reset mid-answer, remote closed, ...
            raise _Retryable(f"connection to {safe_url(self.base_url)} failed: {exc}") from None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LLMTransportError(f"the LLM server answered with non-JSON: {exc}") from None

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        """The JSON answer of `method path`, retrying timeouts, connection errors and 5xx."""
        for attempt in range(self.max_retries + 1):
            try:
                return self._once(method, path, body)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise LLMTransportError(
                        f"LLM server request {method} {path} failed after "
                        f"{attempt + 1} attempt(s): {exc}") from None
                wait = min(self.backoff * 2 ** attempt, MAX_BACKOFF_SECONDS)
                log.warning("LLM %s %s failed (%s); retry %d/%d in %.2f s", method, path, exc,
                            attempt + 1, self.max_retries, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def models(self) -> list[str]:
        """The model ids `GET /models` lists."""
        answer = self.request("GET", "/models")
        entries = answer.get("data", []) if isinstance(answer, dict) else []
        return [str(e.get("id")) for e in entries if isinstance(e, dict) and e.get("id")]

    def chat(self, messages: list[dict], schema: dict, **params: Any) -> tuple[dict, str, bool]:
        """One chat completion asking for JSON under `schema`: `(answer, mode, logprobs asked)`.

        Starts from the remembered mode; a 4xx that refuses the request's shape steps down
        FORMAT_LADDER (json_schema -> json_object -> no response_format -> no logprobs) and the
        mode that worked is remembered for later calls.
        """
        mode = self._mode
        while True:
            kind, logprobs = FORMAT_LADDER[mode]
            body = {"model": self.model, "messages": messages, "stream": False, **params}
            if kind == "json_schema":
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "song_analysis", "strict": True, "schema": schema}}
            elif kind == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
            if logprobs:
                body.update(logprobs=True, top_logprobs=5)
            try:
                answer = self.request("POST", "/chat/completions", body)
            except LLMRequestRejected as exc:
                if not exc.shape or mode == len(FORMAT_LADDER) - 1:
                    raise
                log.info("LLM server refused %s (HTTP %d); trying %s", FORMAT_LADDER[mode],
                         exc.status, FORMAT_LADDER[mode + 1])
                mode += 1
                continue
            with self._mode_lock:
                self._mode = max(self._mode, mode)
            return answer, kind, logprobs


class _Retryable(Exception):
    """A failure worth another attempt (timeout, connection, 5xx)."""
