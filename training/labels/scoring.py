"""Reading a causal LM's probabilities of given continuations, with its KV cache (no sampling).

`Cursor` holds a sequence that has been run through the model (its cache and the log-probs of the
next token); `feed` extends it. `Cursor.score(candidates)` gives each candidate token sequence's
log-probability as a continuation, `log p(c) = sum_t log p(c_t | prefix, c_<t)`, in one batched
forward pass over a copy of the cache (candidates right-padded: padding comes after every scored
position, so causal attention keeps it from touching them). `Cursor.choose(candidates)` decodes
greedily inside a candidate set: token by token, the most likely token that keeps the text inside
some candidate, until one candidate is complete; candidate sets must be prefix-free.
"""

import copy
from typing import Sequence

import torch
import torch.nn.functional as F


class Cursor:
    """A prefix run through `model`, extended in place by `feed` and `choose`."""

    def __init__(self, model: torch.nn.Module, prefix: Sequence[int]):
        self.model = model
        self.device = next(model.parameters()).device
        self.cache = None
        self.next_logprobs: torch.Tensor | None = None  # [V], log p(next token | prefix)
        self.length = 0
        self.feed(prefix)

    def _forward(self, ids: torch.Tensor, cache, last_only: bool = False
                 ) -> tuple[torch.Tensor, object]:
        # last_only: the LM head on the last position only (for a 300-token prompt of a
        # 49k-vocabulary model it is a fifth of the forward pass otherwise).
        out = self.model(input_ids=ids.to(self.device), cache=cache, use_cache=True,
                         logits_to_keep=1 if last_only else 0)
        return F.log_softmax(out.logits.float(), dim=-1), out.cache

    @torch.inference_mode()
    def feed(self, ids: Sequence[int]) -> None:
        """Append `ids` to the sequence (the next token's log-probs are kept)."""
        if not ids:
            return
        logprobs, self.cache = self._forward(torch.tensor([list(ids)]), self.cache,
                                             last_only=True)
        self.next_logprobs = logprobs[0, -1]
        self.length += len(ids)

    @torch.inference_mode()
    def score(self, candidates: Sequence[Sequence[int]]) -> list[float]:
        """Log-probability of each candidate as a continuation (the cursor does not move)."""
        if self.next_logprobs is None:
            raise ValueError("score needs a non-empty prefix")
        longest = max(len(c) for c in candidates)
        if longest == 1:
            return [float(self.next_logprobs[c[0]]) for c in candidates]
        pad = candidates[0][0]
        batch = torch.tensor([list(c) + [pad] * (longest - len(c)) for c in candidates])
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(len(candidates))
        logprobs, _ = self._forward(batch[:, :-1], cache)  # [C, L-1, V]: predicts tokens 1..L-1
        totals = []
        for row, candidate in enumerate(candidates):
            total = float(self.next_logprobs[candidate[0]])
            for t in range(1, len(candidate)):
                total += float(logprobs[row, t - 1, candidate[t]])
            totals.append(total)
        return totals

    def choose(self, candidates: Sequence[Sequence[int]]) -> int:
        """Greedy decoding restricted to `candidates`; feeds the chosen one, returns its index."""
        alive = list(range(len(candidates)))
        position = 0
        while True:
            complete = [i for i in alive if len(candidates[i]) == position]
            if complete:
                return complete[0]
            if len(alive) == 1:  # nothing left to decide: feed the rest in one pass
                self.feed(candidates[alive[0]][position:])
                return alive[0]
            allowed = sorted({candidates[i][position] for i in alive})
            scores = self.next_logprobs[torch.tensor(allowed, device=self.next_logprobs.device)]
            token = allowed[int(scores.argmax())]
            self.feed([token])
            alive = [i for i in alive if candidates[i][position] == token]
            position += 1


def softmax(logits: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Softmax of `logits / temperature` (a plain list in, a plain list out)."""
    return F.softmax(torch.tensor(logits, dtype=torch.float64) / temperature, dim=0).tolist()
