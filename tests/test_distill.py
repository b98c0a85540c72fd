"""Distillation toward the source model on rehearsal rows (training/distill.py), against scipy's entropy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import entropy

from chromosomenet.errors import BadInputError
from chromosomenet.training.classifier import TrainConfig, train
from chromosomenet.training.distill import Teacher


def reference(teacher_logits, student_logits, old, weight, t) -> float:
    """weight × T² × Σ_old KL(p_teacher ‖ p_student) / batch, with scipy."""
    pt, ps = softmax(teacher_logits / t, axis=1), softmax(student_logits / t, axis=1)
    return weight * t * t * sum(entropy(pt[i], ps[i]) for i in np.flatnonzero(old)) / len(old)


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0])
def test_loss_matches_scipy_on_the_rehearsal_rows_only(t):
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Linear(6, 24)
    fed = torch.randn(10, 6, generator=g)
    student = torch.randn(10, 24, generator=g) * 3
    index = torch.tensor([0, 7, 3, 12, 15, 1, 20, 9, 11, 2])  # rows ≥ 10 are rehearsal
    teacher = Teacher(net, first_old=10, weight=1.5, temperature=t)
    got = float(teacher.loss(fed, student, index))
    with torch.no_grad():
        want = reference(net(fed).numpy(), student.numpy(), (index >= 10).numpy(), 1.5, t)
    assert got == pytest.approx(want, rel=1e-5)
    assert got > 0


def test_no_pull_without_rehearsal_rows_or_when_the_student_agrees():
    net = torch.nn.Linear(6, 24)
    fed = torch.randn(8, 6)
    teacher = Teacher(net, first_old=100, weight=2.0)
    assert float(teacher.loss(fed, torch.randn(8, 24), torch.arange(8))) == 0.0  # all the lab's own rows
    with torch.no_grad():
        same = net(fed)
    assert float(teacher.loss(fed, same, torch.arange(100, 108))) == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_the_student_on_rehearsal_rows_and_never_the_teacher():
    net = torch.nn.Linear(6, 24)
    fed = torch.randn(6, 6)
    student = torch.randn(6, 24, requires_grad=True)
    Teacher(net, first_old=3, weight=1.0).loss(fed, student, torch.arange(6)).backward()
    assert student.grad[:3].abs().sum() == 0 and student.grad[3:].abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())


def test_distill_needs_rehearsal_and_a_model_to_start_from(tmp_path, tiny_dataset):
    cfg = TrainConfig(model="chromosomenet_view_resnet10t_half", data=str(tiny_dataset), out=tmp_path / "r",
                      init="none", distill=1.0, epochs=1, progress=False)
    with pytest.raises(BadInputError, match="distill"):
        train(cfg)
    assert not (tmp_path / "r").exists()  # refused before anything was written
