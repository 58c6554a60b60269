"""KD losses, tested by their properties (style rule 10)."""

import math

import pytest
import torch
import torch.nn.functional as F

from training.distill.losses import kd_categorical, kd_multilabel, score_loss


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(6, 4, generator=generator)
    teacher = torch.randn(6, 4, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    return student, teacher, labels


def test_kd_term_is_zero_for_identical_logits(batch):
    student, _, labels = batch
    assert kd_categorical(student, student, labels, alpha=1.0).item() == pytest.approx(0, abs=1e-6)


def test_alpha_zero_is_pure_cross_entropy(batch):
    student, teacher, labels = batch
    expected = F.cross_entropy(student, labels)
    assert torch.allclose(kd_categorical(student, teacher, labels, alpha=0.0), expected)


def test_alpha_one_is_pure_kd_matching_torch_kl_div(batch):
    student, teacher, labels = batch
    t = 4.0
    reference = F.kl_div(F.log_softmax(student / t, -1), F.softmax(teacher / t, -1),
                         reduction="batchmean") * t**2
    assert torch.allclose(kd_categorical(student, teacher, labels, t, 1.0), reference, atol=1e-6)


def test_mixture_is_linear_in_alpha(batch):
    student, teacher, labels = batch
    soft = kd_categorical(student, teacher, labels, alpha=1.0)
    hard = kd_categorical(student, teacher, labels, alpha=0.0)
    mixed = kd_categorical(student, teacher, labels, alpha=0.7)
    assert torch.allclose(mixed, 0.7 * soft + 0.3 * hard, atol=1e-6)


def test_t_squared_scaling(batch):
    student, teacher, labels = batch
    for t in (1.0, 2.0, 4.0):
        raw = F.kl_div(F.log_softmax(student / t, -1), F.softmax(teacher / t, -1),
                       reduction="batchmean")
        assert torch.allclose(kd_categorical(student, teacher, labels, t, 1.0), raw * t * t,
                              atol=1e-6)


def test_one_hot_teacher_from_log_probabilities_is_finite(batch):
    student, _, labels = batch
    teacher = torch.log(F.one_hot(labels, 4).float())  # -inf off the gold class
    loss = kd_categorical(student, teacher, labels, temperature=4.0, alpha=1.0)
    assert math.isfinite(loss.item())
    # A one-hot target at any T is CE of the tempered student on the gold class.
    expected = F.cross_entropy(student / 4.0, labels) * 16
    assert torch.allclose(loss, expected, atol=1e-5)


def test_kd_gradient_points_the_student_towards_the_teacher(batch):
    student, teacher, labels = batch
    student = student.clone().requires_grad_(True)
    kd_categorical(student, teacher, labels, alpha=1.0).backward()
    stepped = student - 0.5 * student.grad
    before = kd_categorical(student.detach(), teacher, labels, alpha=1.0)
    after = kd_categorical(stepped.detach(), teacher, labels, alpha=1.0)
    assert after < before


def test_multilabel_kd_is_zero_when_student_matches_teacher():
    logits = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.5, 1.5]])
    probs = torch.sigmoid(logits)
    loss = kd_multilabel(logits, probs, torch.zeros_like(logits), alpha=1.0)
    assert loss.item() == pytest.approx(0, abs=1e-5)


def test_multilabel_alpha_zero_is_bce():
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = F.binary_cross_entropy_with_logits(logits, targets)
    loss = kd_multilabel(logits, torch.full_like(logits, 0.5), targets, alpha=0.0)
    assert torch.allclose(loss, expected)


def test_multilabel_kd_is_positive_when_they_differ():
    logits = torch.tensor([[2.0, -1.0]])
    loss = kd_multilabel(logits, torch.tensor([[0.1, 0.9]]), torch.zeros(1, 2), alpha=1.0)
    assert loss.item() > 0.1


def test_score_loss_endpoints():
    predicted, teacher, gold = torch.tensor([0.5, 0.9]), torch.tensor([0.5, 0.9]), torch.tensor(
        [0.2, 0.1])
    assert score_loss(predicted, teacher, gold, alpha=1.0).item() == pytest.approx(0)
    assert score_loss(predicted, teacher, gold, alpha=0.0).item() > 0


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"alpha": 1.5}, {"alpha": -0.1}])
def test_bad_hyperparameters_fail_fast(batch, kwargs):
    student, teacher, labels = batch
    with pytest.raises(ValueError):
        kd_categorical(student, teacher, labels, **kwargs)
