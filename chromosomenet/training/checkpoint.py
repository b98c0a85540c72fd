"""A run folder's training state: per-epoch checkpoint (atomic), resume checks, the epoch log.

    RUN_DIR/checkpoint/  model.safetensors  best.safetensors  optim.pt  state.json
    RUN_DIR/log.csv      one row per epoch (a classifier's: epoch, train_loss, val_loss, val_accuracy, lr,
                         images_per_s, seconds; a detector's names its own validation measures)
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import BadInputError
from ..fsutil import atomic_write_text, staged_dir

LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr", "images_per_s", "seconds")


@dataclass
class RunState:
    identity: dict                      # what a resumed run must share: model, data, recipe
    epoch: int = 0                      # epochs finished
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0                 # epochs since the best one (early stopping)
    log: list[dict] = field(default_factory=list)
    plan: dict | None = None            # a time-budget run's step plan (budget.Plan), fixed at its start

    def record(self, row: dict) -> None:
        self.log.append(row)

    def update(self, epoch: int, val_loss: float) -> bool:
        """Count epoch ``epoch``; True when its validation loss is the best so far (keep its weights)."""
        self.epoch = epoch
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    def done(self, n_epochs: int, patience: int) -> bool:
        """The epoch budget is spent or validation loss has not improved for ``patience`` epochs."""
        return self.epoch >= n_epochs or self.bad_epochs >= patience


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of a state dict (safetensors refuses strided tensors)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save(run_dir: Path, state: RunState, model_state: dict, best_state: dict, optimizer, scheduler) -> None:
    """Replace RUN_DIR/checkpoint in one rename, then rewrite the log: a kill never leaves half a checkpoint."""
    with staged_dir(run_dir / "checkpoint", overwrite=True) as tmp:
        save_file(cpu_copy(model_state), str(tmp / "model.safetensors"))
        save_file(cpu_copy(best_state), str(tmp / "best.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optim.pt")
        (tmp / "state.json").write_text(json.dumps(asdict(state), indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(state.log[0]) if state.log else LOG_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(state.log)
    atomic_write_text(run_dir / "log.csv", buf.getvalue())


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoint" / "state.json").exists()


def load(run_dir: Path, identity: dict) -> tuple[RunState, dict, dict, dict]:
    """(state, model weights, best weights, optimizer+scheduler state); refuses another run's checkpoint."""
    folder = run_dir / "checkpoint"
    state = RunState(**json.loads((folder / "state.json").read_text()))
    differ = {k: (state.identity.get(k), v) for k, v in identity.items() if state.identity.get(k) != v}
    if differ:
        what = "; ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in differ.items())
        raise BadInputError(run_dir, f"cannot resume: the checkpoint is of another run ({what})",
                            "resume with the same model, data and recipe, or train into a new folder")
    optim = torch.load(folder / "optim.pt", map_location="cpu", weights_only=True)
    return state, load_file(str(folder / "model.safetensors")), load_file(str(folder / "best.safetensors")), optim


def one_cycle(model: torch.nn.Module, lr: float, weight_decay: float, steps: int, pct_start: float,
              resumed: tuple | None = None):
    """(optimizer, scheduler, best weights so far): AdamW on a one-cycle schedule over ``steps``, restored
    with the weights from ``resumed`` (what :func:`load` returns) when a run goes on."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=pct_start)
    best = cpu_copy(model.state_dict())
    if resumed:
        _, weights, best, optim = resumed
        model.load_state_dict(weights)
        optimizer.load_state_dict(optim["optimizer"])
        scheduler.load_state_dict(optim["scheduler"])
    return optimizer, scheduler, best
