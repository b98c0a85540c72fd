"""The flags several verbs share: the training recipe, how cells are read, worker processes."""
from __future__ import annotations

import argparse
import os


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The training flags (shared by `chromosomenet train` and train_accelerate.py)."""
    p.add_argument("--model", required=True, help="timm name; `chromosomenet models` lists the paper's")
    p.add_argument("--data", required=True, help="a built dataset folder or a (cached) Hub dataset id")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, then the model repo")
    add_recipe_args(p)


def recipe_kwargs(a: argparse.Namespace) -> dict:
    """TrainConfig keyword arguments from the recipe flags."""
    from ..data.transforms import Augment

    return dict(img_size=a.img_size, in_chans=a.in_chans, init=a.init, batch_size=a.batch_size, lr=a.lr,
                weight_decay=a.weight_decay, pct_start=a.pct_start, label_smoothing=a.label_smoothing,
                max_epochs=a.max_epochs, epochs=a.epochs, patience=a.patience, seed=a.seed,
                augment=Augment(rotate_deg=a.rotate, flip=not a.no_flip, brightness=a.jitter, contrast=a.jitter,
                                scale=a.scale_jitter, width=a.width_jitter, gamma=a.gamma, blur=a.blur, noise=a.noise,
                                jpeg=a.jpeg),
                workers=a.workers, eval_batch_size=a.eval_batch_size, bn_stats_images=a.bn_stats_images,
                compile=a.compile, time_budget=a.time_budget, precision=a.precision, cache=not a.no_cache,
                cell_scale=not a.no_cell_scale)


def add_cell_scale_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cell-scale", action="store_true",
                   help="read each chromosome alone at its own pixels and greys, not its cell at the training lab's "
                        "median chromosome length and ink greys and, at prediction, together (the cell's statistics)")


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """How to train (everything but which model, data and folder)."""
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--in-chans", type=int, choices=(1, 3), default=3,
                   help="3: grey repeated to RGB on the device (default; works with timm/transformers tools)")
    p.add_argument("--init", default="imagenet", help="imagenet | none | PATH to .safetensors or model folder")
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--pct-start", type=float, default=0.25, help="one-cycle warm-up share")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--max-epochs", type=int, default=500)
    p.add_argument("--epochs", type=int, help="cap the epochs (and the one-cycle length) for quick runs")
    p.add_argument("--patience", type=int, default=5, help="early stopping on validation loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rotate", type=float, default=15.0, help="max rotation in degrees")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--jitter", type=float, default=0.1, help="brightness/contrast jitter")
    looks = p.add_argument_group("another microscope's looks (0: off)")
    looks.add_argument("--scale-jitter", type=float, default=0.0, help="± size, log-uniform (e.g. 0.15)")
    looks.add_argument("--width-jitter", type=float, default=0.0, help="± width across the chromosome")
    looks.add_argument("--gamma", type=float, default=0.0, help="± gamma exponent, log-uniform")
    looks.add_argument("--blur", type=float, default=0.0, help="share of images blurred (σ 0.3–1 px)")
    looks.add_argument("--noise", type=float, default=0.0, help="largest σ of pixel noise (e.g. 0.03)")
    looks.add_argument("--jpeg", type=float, default=0.0, help="share of images through JPEG at quality 30–90")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes per training process")
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--bn-stats-images", type=int, default=4096,
                   help="recompute BatchNorm statistics on this many training images each epoch (0: off)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    add_cell_scale_flag(p)
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="plan the one-cycle schedule from a measured step time to end annealed within MINUTES")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on GPU, fp32 on CPU; bf16 pays on CPUs with AVX-512-BF16/AMX")
    p.add_argument("--no-cache", action="store_true",
                   help="view models: decode canvases per batch instead of holding the split's views in memory")


def add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")


def add_push_parser(sub, verb: str, folder: str, help: str, func) -> None:
    """`push-model` / `push-dataset`: a finished folder to a Hub repo."""
    p = sub.add_parser(verb, help=help)
    p.add_argument(folder)
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=func)


def add_batch_flags(p: argparse.ArgumentParser, table: str) -> None:
    """What an earlier run's results in --out become (:mod:`chromosomenet.pipeline.batch`)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true",
                   help=f"skip the images already in OUT/{table} (an interrupted batch goes on where it stopped)")
    g.add_argument("--overwrite", action="store_true",
                   help=f"do the images already in OUT/{table} again and replace their rows (others are kept)")


def batch_mode(a: argparse.Namespace) -> str:
    return "resume" if getattr(a, "resume", False) else "overwrite" if getattr(a, "overwrite", False) else "append"
