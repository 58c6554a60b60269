"""Reading a served model's token logprobs: which token began a JSON value, and its alternatives.

OpenAI-compatible servers return, per generated token, its text and `top_logprobs` (the most
likely tokens at that position). The distribution over a field's allowed values is read at the
token holding the value's first character: the alternatives listed there that continue the text
written before the value inside that token. Both the `llm` backend (the verdict) and
`training.labels.served` (every categorical field of a served teacher) read it this way.
"""

import re


def value_alternatives(text: str, tokens: list, key: str, quoted: bool = True
                       ) -> tuple[str, list] | None:
    """`(prefix, top_logprobs)` at the token holding the first character of `key`'s value in the
    JSON `text` (`quoted`: a string value, so the opening quote is skipped), where `prefix` is the
    part of that token before the value. None when the key is absent or the tokens do not spell
    the text (byte pieces, another tokenizer's view)."""
    quote = '"' if quoted else ""
    match = re.search(rf'"{re.escape(key)}"\s*:\s*{quote}', text)
    pieces = [t.get("token") if isinstance(t, dict) else None for t in tokens]
    if match is None or not all(isinstance(p, str) for p in pieces):
        return None
    start, offset = match.end(), 0
    if "".join(pieces)[:start] != text[:start]:
        return None
    for token, piece in zip(tokens, pieces):
        if offset + len(piece) > start:
            return text[offset:start], token.get("top_logprobs") or []
        offset += len(piece)
    return None
