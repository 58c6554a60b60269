"""Knowledge-distillation losses: pure functions of tensors, one per kind of head.

The plan's loss for a categorical head (Hinton et al., 2015, "Distilling the Knowledge in a
Neural Network", eq. 2, with the T^2 factor that keeps soft-target gradients at the scale of the
hard-label ones):

    L = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, y)

Teachers that give probabilities rather than logits pass `log(p)`: softmax is shift-invariant, so
`log(p)` are logits of `p`, and a one-hot `p` (no teacher: the gold label as target) gives
`-inf` logits whose tempered softmax is the same one-hot, handled exactly by `xlogy`.
"""

import torch
import torch.nn.functional as F


def kd_categorical(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.7,
) -> torch.Tensor:
    """KD loss of a single-label head, averaged over the batch.

    student_logits, teacher_logits: [B, C] (teacher may hold -inf for impossible classes);
    labels: [B] class indices. Returns a scalar.
    """
    _check(temperature, alpha)
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    p = F.softmax(teacher_logits / temperature, dim=-1)
    # KL(p || q) = sum p (log p - log q); xlogy makes 0 * log 0 = 0 for one-hot teachers.
    kl = (torch.special.xlogy(p, p) - p * log_q).sum(-1).mean()
    ce = F.cross_entropy(student_logits, labels)
    return alpha * temperature**2 * kl + (1 - alpha) * ce


def kd_multilabel(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.7,
) -> torch.Tensor:
    """KD loss of a multi-label head: per-label binary KL at temperature T, plus BCE on targets.

    student_logits: [B, K]; teacher_probs: [B, K] in [0, 1] (soft binary targets);
    targets: [B, K] hard 0/1 labels. The tempered teacher is sigmoid(logit(p) / T). Mean over B*K.
    """
    _check(temperature, alpha)
    p = teacher_probs.clamp(0.0, 1.0)
    p_t = torch.sigmoid(torch.logit(p, eps=1e-6) / temperature)
    q_t = torch.sigmoid(student_logits / temperature)
    # Binary KL(p_t || q_t) = BCE(q_t; p_t) - H(p_t); zero when the two agree.
    entropy = -(torch.special.xlogy(p_t, p_t) + torch.special.xlogy(1 - p_t, 1 - p_t))
    soft = F.binary_cross_entropy_with_logits(student_logits / temperature, p_t, reduction="none")
    kl = (soft - entropy).mean()
    hard = F.binary_cross_entropy_with_logits(student_logits, targets.float())
    return alpha * temperature**2 * kl + (1 - alpha) * hard


def score_loss(
    predicted: torch.Tensor, teacher: torch.Tensor, gold: torch.Tensor, alpha: float = 0.7
) -> torch.Tensor:
    """Regression loss of the 0-100 score, on the 0-1 scale: Smooth-L1 to teacher and gold.

    predicted, teacher, gold: [B] on the 0-1 scale. With no teacher, pass gold as teacher.
    """
    _check(1.0, alpha)
    return alpha * F.smooth_l1_loss(predicted, teacher, beta=0.05) + (1 - alpha) * F.smooth_l1_loss(
        predicted, gold, beta=0.05
    )


def _check(temperature: float, alpha: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
