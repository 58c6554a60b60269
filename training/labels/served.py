"""`python -m training.labels.served`: soft labels for every song from a served teacher.

    python -m training.labels.served --data ../shared/data/songs.jsonl \\
        --base-url http://127.0.0.1:8080/v1 --model qwen3-8b --out runs/served_labels.jsonl

The teacher is any OpenAI-compatible server (llama.cpp, vLLM, Ollama) instead of a local
checkpoint. For each song one chat completion is asked for (the teacher prompt and user turn of
`training.teacher`, sampling temperature 0 by default) with the answer constrained to
`answer_schema()` (the fine-tuning answer's field order: verdict, formation_risk,
narrative_voice, lament_filter_applied, score, themes, concerns) and `logprobs` with
`top_logprobs`. For each categorical field, `value_distribution` reads the top_logprobs of the
first token of its value: each allowed value gets the probability of the alternatives that begin
it (split evenly between values an alternative begins alike), a value no listed token begins gets
the least listed probability (at most what it could have had), renormalised; when only the
least listed token begins a value (servers list the sampled token even below the top k), the
field is uniform and named in the record's `uninformative` list. Servers report the
model's logprobs before their grammar masks them, so over the allowed values this is the
constrained first-token distribution; the answer before a field is the teacher's own (as in
`soft`, where it is teacher-forced on its own choices), but only the first token of each value is
scored, not the whole value as `soft` does (no echo scoring of chat turns over this API).
`teacher_logits` are those log-probabilities, `teacher_probs` their softmax at `temperature`;
score, themes and concerns come from the answer itself.

Output: the JSONL and provenance header of `training.labels.soft` (format
`selah-teacher-labels-1`; teacher, server, prompt, date pin), one record per song keyed by the
song hash; a rerun skips songs already written. A song whose answer cannot be read is reported
and not written, so a rerun tries it again. The API key is read from the environment variable
named by `api_key_env`, never from the config or written anywhere. Standard library only
(`training` may not import the service's client).
"""

import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from selah import schema
from selah.chat import PINNED_DATE, user_message
from selah.logprobs import value_alternatives
from training.config import option, parse_config
from training.data.readers import read_examples
from training.labels.soft import FORMAT, LabelsError, read_done, song_hash
from training.teacher import prompts as fmt

PROG = "python -m training.labels.served"


class Refused(LabelsError):
    """The server refused the request's shape or credentials (a 4xx, or a validation 500)."""


@dataclass
class ServedLabelsConfig:
    """Settings of one labelling run against a served teacher."""

    data: str | None = option(None, "labelled JSONL file (every song in it gets labels)")
    out: str | None = option(None, "teacher-labels JSONL to write (appended to when resuming)")
    base_url: str = option("http://127.0.0.1:8080/v1", "the server's OpenAI-compatible /v1 URL")
    model: str | None = option(None, "the model id the server lists at GET /models")
    api_key_env: str = option("LLM_API_KEY", "environment variable holding the API key (if any)")
    temperature: float = option(1.0, "softmax temperature of teacher_probs", minimum=0.01)
    sampling_temperature: float = option(0.0, "the server's sampling temperature", minimum=0.0)
    top_logprobs: int = option(5, "alternatives asked for per token", minimum=1, maximum=20)
    max_tokens: int = option(400, "longest answer", minimum=16)
    timeout: float = option(120.0, "seconds to wait for one answer", minimum=0.1)
    max_retries: int = option(2, "retries of a timeout, connection error, 5xx or 429",
                              minimum=0)
    max_songs: int | None = option(None, "label only the first N songs (a rerun with more "
                                   "continues)", minimum=1)
    progress: bool = option(True, "show a progress bar")


def answer_schema() -> dict:
    """The answer's JSON schema, fields in the fine-tuning answer's order."""
    enum = {name: {"type": "string", "enum": list(written)}
            for name, key, written, _ in fmt.CATEGORICAL if key != "lament_filter_applied"}
    return {"type": "object", "properties": {
        **enum, "lament_filter_applied": {"type": "boolean"},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "themes": {"type": "array", "items": {"type": "string", "enum": list(schema.THEME_NAMES)}},
        "concerns": {"type": "array", "items": {"type": "string",
                                                "enum": list(schema.CONCERN_CATEGORIES)}},
    }, "required": [key for _, key, _, _ in fmt.CATEGORICAL] + ["score", "themes", "concerns"]}


def value_distribution(text: str, tokens: list, key: str, written: tuple[str, ...]
                       ) -> tuple[list[float], bool] | None:
    """`(probabilities of each written value of key, informative)` from the top_logprobs of its
    value's first token; None when the key is absent or the tokens do not spell the text.
    Not informative (uniform) when only the least listed token, the sampled one that servers list
    even below the top k, begins a value."""
    found = value_alternatives(text, tokens, key, quoted=key != "lament_filter_applied")
    if found is None:
        return None
    prefix, alternatives = found
    mass = [0.0] * len(written)
    listed = [(a["token"], math.exp(a["logprob"])) for a in alternatives
              if isinstance(a.get("token"), str) and isinstance(a.get("logprob"), (int, float))]
    for piece, p in listed:
        rest = piece[len(prefix):].split('"')[0].split(",")[0] if piece.startswith(prefix) else ""
        begun = [i for i, value in enumerate(written)
                 if rest and (value.startswith(rest) or rest.startswith(value))]
        for i in begun:
            mass[i] += p / len(begun)
    if not listed or sum(mass) <= 0:
        return None
    floor = min(p for _, p in listed)
    informative = max(mass) > floor
    mass = [m if m > 0 else floor for m in mass] if informative else [1.0] * len(mass)
    return [m / sum(mass) for m in mass], informative


def softmax(logits: list[float], temperature: float) -> list[float]:
    """softmax(logits / temperature)."""
    top = max(logits)
    weights = [math.exp((x - top) / temperature) for x in logits]
    return [w / sum(weights) for w in weights]


class ServedTeacher:
    """Requests to the served teacher, and one song's labels from its answer."""

    def __init__(self, config: ServedLabelsConfig):
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self._key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        self.formats = ["json_schema", "json_object"]  # json_object + schema: llama.cpp's form

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = json.dumps(body).encode()
        for attempt in range(self.config.max_retries + 1):
            wait = 0.5 * 2 ** attempt
            request = urllib.request.Request(self.url, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as exc:
                with exc:
                    detail = exc.read(1000).decode("utf-8", "replace")
                    retry_after = exc.headers.get("Retry-After") or ""
                if re.search(r"validation error|response_format|json_schema", detail) or (
                        exc.code < 500 and exc.code not in (408, 429)):
                    raise Refused(f"HTTP {exc.code}: {detail[:200]}") from None
                if attempt == self.config.max_retries:
                    raise LabelsError(f"HTTP {exc.code} after {attempt + 1} attempt(s): "
                                      f"{detail[:200]}") from None
                if exc.code == 429:
                    wait = float(retry_after) if retry_after.replace(".", "").isdigit() else 5.0
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                if attempt == self.config.max_retries:
                    raise LabelsError(f"cannot reach {self.url}: {exc}") from None
            time.sleep(min(wait, 30.0))
        raise AssertionError("unreachable")

    def ask(self, example) -> dict:
        """The server's reply for one song (stepping from json_schema to json_object when the
        server refuses the first; the one that worked is kept)."""
        body = {"model": self.config.model, "messages": [
            {"role": "system", "content": fmt.TEACHER_PROMPT},
            {"role": "user", "content": user_message(example.title, example.artist,
                                                     fmt.encodable(example.lyrics))}],
            "temperature": self.config.sampling_temperature, "max_tokens": self.config.max_tokens,
            "logprobs": True, "top_logprobs": self.config.top_logprobs, "stream": False}
        while True:
            kind = self.formats[0]
            body["response_format"] = (
                {"type": "json_schema", "json_schema": {"name": "labels", "schema":
                                                        answer_schema()}}
                if kind == "json_schema" else {"type": "json_object", "schema": answer_schema()})
            try:
                return self._post(body)
            except Refused:
                if len(self.formats) == 1:
                    raise
                self.formats.pop(0)

    def label(self, example) -> dict:
        """The teacher-labels record of one song; LabelsError when the answer is unreadable."""
        reply = self.ask(example)
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"]
            tokens = (choice.get("logprobs") or {}).get("content") or []
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LabelsError("the reply has no choices[0].message.content") from None
        logits, probs, hard, uninformative = {}, {}, {}, []
        for name, key, written, labels in fmt.CATEGORICAL:
            found = value_distribution(text, tokens, key, written)
            if found is None:
                cut = " (cut at max_tokens)" if choice.get("finish_reason") == "length" else ""
                raise LabelsError(f"no logprobs for {key} in the answer{cut}: {text[:100]!r}")
            distribution, informative = found
            if not informative:
                uninformative.append(name)
            logits[name] = {lab: round(math.log(p), 5) for lab, p in zip(labels, distribution)}
            probs[name] = {lab: round(p, 6) for lab, p in zip(
                labels, softmax(list(logits[name].values()), self.config.temperature))}
            hard[name] = max(probs[name], key=probs[name].get)
        record = {"song_id": example.song_id, "song_hash": song_hash(example),
                  "teacher_logits": logits, "teacher_probs": probs, "labels": hard,
                  "confidence": round(max(probs["verdict"].values()), 6), "windows": 1,
                  "uninformative": uninformative}
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            answer = {}  # cut after the categorical fields: they are all we need
        score = answer.get("score") if isinstance(answer, dict) else None
        if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 100:
            record["score"] = record["labels"]["score"] = int(score)
        for name, allowed in fmt.LISTS:
            chosen = answer.get(name) if isinstance(answer, dict) else None
            if isinstance(chosen, list):
                kept = list(dict.fromkeys(c for c in chosen if c in allowed))
                record["labels"][name] = kept
                record["teacher_probs"][name] = {n: 1.0 for n in kept}
        return record


def provenance(config: ServedLabelsConfig) -> dict:
    """The header of the output file (what a resumed run must match)."""
    return {"format": FORMAT, "teacher": config.model, "teacher_sha256": None,
            "server": re.sub(r"//[^/@]*@", "//", config.base_url), "source": "served",
            "chat_template_sha256": None, "system_prompt": fmt.TEACHER_PROMPT,
            "temperature": config.temperature,
            "sampling_temperature": config.sampling_temperature,
            "top_logprobs": config.top_logprobs, "max_tokens": config.max_tokens,
            "date_pin": PINNED_DATE.isoformat(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run(config: ServedLabelsConfig) -> dict:
    """Label every song of `config.data` not yet in `config.out`; the run's summary."""
    from tqdm.auto import tqdm

    if not config.data or not Path(config.data).is_file():
        raise LabelsError(f"data file {config.data} not found; pass --data FILE")
    if not config.model or not config.out:
        raise LabelsError("pass --model (an id the server lists) and --out FILE")
    examples, _ = read_examples(config.data)
    examples = examples[:config.max_songs] if config.max_songs else examples
    header, out = provenance(config), Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(out, header)
    if not done:
        out.write_text(json.dumps({"provenance": header}) + "\n", encoding="utf-8")
    todo = [e for e in examples if song_hash(e) not in done]
    teacher, failed, started = ServedTeacher(config), {}, time.perf_counter()
    with out.open("a", encoding="utf-8") as handle:
        for example in tqdm(todo, desc="served teacher labels", disable=not config.progress):
            try:
                record = teacher.label(example)
            except LabelsError as exc:
                failed[example.song_id] = str(exc)
                continue
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
    seconds = time.perf_counter() - started
    summary = {"out": str(out), "labelled": len(todo) - len(failed), "failed": len(failed),
               "skipped": len(examples) - len(todo), "failures": dict(list(failed.items())[:20]),
               "seconds_per_song": round(seconds / len(todo), 3) if todo else None}
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    """`python -m training.labels.served [--config FILE] [--flag value ...]`."""
    config = parse_config(ServedLabelsConfig, argv, PROG, __doc__.split("\n\n")[0])
    try:
        summary = run(config)
    except LabelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
