"""Keep the first lab's answers while learning a new one: the source model's own answers as soft targets.

``adapt`` trains on the lab's chromosomes followed by rehearsal chromosomes of the training lab. Their true
labels alone let the adapted model fit the few rehearsal cells it sees and drift everywhere else; the frozen
source model's full probability vectors on the same rehearsal images (which wrong classes it finds close)
hold far more of what it knew per image (Li & Hoiem's "learning without forgetting", Hinton's distillation).
The pull acts only on rehearsal rows: on the lab's own chromosomes the source is what is being corrected.
"""
from __future__ import annotations

import torch


class Teacher:
    """The frozen source network and the rows it speaks for: dataset indices ``>= first_old`` (rehearsal)."""

    def __init__(self, net: torch.nn.Module, first_old: int, weight: float, temperature: float = 2.0):
        self.net = net.eval().requires_grad_(False)
        self.first_old, self.weight, self.temperature = first_old, weight, temperature

    def loss(self, fed: torch.Tensor, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``weight`` × T² × KL(teacher ‖ student) at temperature T, averaged over the batch's rehearsal rows
        (over the whole batch, so a batch of few rehearsal rows pulls in proportion)."""
        old = index >= self.first_old
        if not bool(old.any()):
            return logits.new_zeros(())
        with torch.no_grad():
            target = (self.net(fed[old]).float() / self.temperature).log_softmax(-1)
        t = self.temperature
        kl = torch.nn.functional.kl_div((logits[old] / t).log_softmax(-1), target, log_target=True,
                                        reduction="sum")
        return self.weight * t * t * kl / len(index)
