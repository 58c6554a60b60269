"""Evidence: the lyric lines behind each theme and concern, read off the student itself.

A mean-pooling student's song vector is the mean of its token states and every head is linear,
so a head's logit for the song is the mean of its logits for each token state:
z_song = (1/N) sum_t z_t, with z_t = W h_t + b (h_t: token t's state in the context of its
window). The tokens that pull an item's logit up are those with z_t above z_song, and a line's
reading is its strongest token's, max over t in the line of z_t: the lines named for an item are
those whose reading is at or above the song's, strongest first. This needs no second forward
pass and no gradient: the states are the ones the song's own prediction was made from, read
beside the pooling sums (`line_peaks`). A named line's strength is exp(reading - strongest
reading): 1 for the strongest line, less for the others (one token state reads far past the
song's logit, so its own sigmoid is 1.0 for nearly every named line and says nothing).

Measured against two alternatives, a line's mean token logit (the exact per-line share of the
song's mean) and each line encoded alone (a second forward pass, 3x the song's), the strongest
token named a line holding a concern's words most often (docs/benchmarks.md, issue 16). The
title and artist count in the song vector but are never named. Students that pool the last
token (decoders) or read a chat prompt have no such decomposition: they give no evidence.

Line numbers are 1-based over `lyrics.splitlines()`, the lines a reader sees (blank lines
counted, never named).
"""

import math
from bisect import bisect_right
from typing import Sequence

# Heads whose items carry evidence.
EVIDENCE_HEADS = ("themes", "concerns")
# Lines named per item at most (a line repeated word for word counts once, with all its numbers).
MAX_LINES = 3


def supported(model, featurizer) -> bool:
    """Whether this student's outputs decompose over lines (mean pooling of a plain text)."""
    return model.pooling == "mean" and featurizer.prompt == "plain" and all(
        name in model.heads for name in EVIDENCE_HEADS)


def line_starts(song: dict) -> tuple[int, list[int]]:
    """(where the lyrics start in the student's text, each lyric line's start within them)."""
    from selah.student import song_text  # torch: not for a backend that only renders

    prefix = len(song_text(song["title"], song["artist"], ""))
    lyrics = song_text(song["title"], song["artist"], song["lyrics"])[prefix:]
    starts, position = [], 0
    for line in lyrics.splitlines(keepends=True):
        starts.append(position)
        position += len(line)
    return prefix, starts


def token_lines(offsets: Sequence, starts: tuple[int, list[int]]) -> list[int]:
    """The lyric line (1-based) of each token of one window, 0 for the title, artist, special
    and padding tokens; `offsets` are the tokenizer's `(start, end)` character spans, `starts`
    the song's `line_starts`."""
    prefix, starts = starts
    lines = []
    for start, end in offsets:
        lines.append(bisect_right(starts, start - prefix) if end > start and start >= prefix
                     else 0)
    return lines


def line_peaks(model, hidden, lines) -> list[tuple[list[int], object]]:
    """Per window, `(line numbers, peaks [k, width])`: for each lyric line the window holds, the
    largest logit over the line's tokens of every unit of EVIDENCE_HEADS, side by side (the heads'
    weights stacked into one GEMM). `hidden` [W, L, hidden] (float32), `lines` [W, L] (0: no
    lyric line). The GEMM runs one window at a time, so a window's numbers do not depend on what
    else is in its pass."""
    import torch

    heads = [model.heads[name] for name in EVIDENCE_HEADS]
    width = sum(head.weight.size(0) for head in heads)
    # [hidden, width] padded with zero columns to a multiple of 16: the GEMM of the shipped
    # heads' 67 units took 135 us a window here, of 80 units 91 us
    padded = -(-width // 16) * 16
    weight = torch.zeros(hidden.size(-1), padded, device=hidden.device)
    weight[:, :width] = torch.cat([head.weight for head in heads]).float().t()
    bias = torch.zeros(padded, device=hidden.device)
    bias[:width] = torch.cat([head.bias for head in heads]).float()
    terms = []
    for states, numbers in zip(hidden, lines.to(hidden.device)):
        inside = numbers > 0  # the lyric's tokens: not the title, artist, specials or padding
        present = sorted(set(numbers[inside].tolist()))
        if not present:
            terms.append((present, torch.zeros(0, width)))
            continue
        slot = torch.zeros(present[-1] + 1, dtype=torch.long, device=numbers.device)
        slot[torch.tensor(present, dtype=torch.long, device=numbers.device)] = torch.arange(
            len(present), device=numbers.device)
        slots = slot[numbers[inside]]  # line present[k] -> k
        logits = torch.addmm(bias, states[inside], weight)  # [lyric tokens, padded]
        best = torch.full((len(present), padded), -math.inf, device=logits.device)
        best.scatter_reduce_(0, slots.unsqueeze(-1).expand_as(logits), logits, "amax")
        terms.append((present, best[:, :width].cpu()))
    return terms


def song_line_logits(model, windows: Sequence) -> dict:
    """One song's evidence from its windows' `line_peaks`: `{"lines": [line numbers], head:
    readings [n_lines, width] for each of EVIDENCE_HEADS}` (a line in two windows, where they
    overlap, reads as its stronger token: a max, the same in any order)."""
    import torch

    lines = sorted({line for present, _ in windows for line in present})
    result: dict = {"lines": lines}
    if not lines:
        return result
    row = {line: i for i, line in enumerate(lines)}
    rows = torch.tensor([row[line] for present, _ in windows for line in present])
    peaks = torch.cat([values for _, values in windows])
    best = torch.full((len(lines), peaks.size(-1)), -math.inf)
    best.scatter_reduce_(0, rows.unsqueeze(-1).expand_as(peaks), peaks, "amax")
    start = 0
    for name in EVIDENCE_HEADS:
        width = model.heads[name].weight.size(0)
        result[name] = best[:, start:start + width]
        start += width
    return result


def evidence_for(line_logits: dict | None, head: str, column: int, song_logit: float,
                 lyrics: str) -> list[dict]:
    """The lines behind one item (a theme or concern: `column` of `head`): the lines whose
    reading is at or above the song's logit `song_logit`, strongest first (at least the
    strongest one), at most MAX_LINES distinct texts, as `{lines, text, strength}`."""
    if not line_logits or head not in line_logits:
        return []
    values = [row[column] for row in line_logits[head]]
    texts = lyrics.splitlines()
    ranked = sorted(zip(values, line_logits["lines"]), key=lambda item: (-item[0], item[1]))
    chosen: dict[str, dict] = {}
    top = 0.0  # the strongest named line's reading
    for value, line in ranked:
        text = texts[line - 1].strip() if line <= len(texts) else ""
        if not text:
            continue
        if text in chosen:
            chosen[text]["lines"].append(line)
            continue
        if chosen and (value < song_logit or len(chosen) == MAX_LINES):
            continue
        top = value if not chosen else top
        chosen[text] = {"lines": [line], "text": text,
                        "strength": round(math.exp(max(value - top, -700.0)), 3)}
    for item in chosen.values():
        item["lines"].sort()
    return list(chosen.values())


def lines_phrase(items: Sequence[dict]) -> str:
    """`line 4` / `lines 12 and 18` / `lines 3, 7 and 9` for the evidence of one item."""
    numbers = sorted({n for item in items for n in item["lines"]})
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    return "lines " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
