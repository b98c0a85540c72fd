"""Figures written next to the numbers they show (matplotlib, headless).

Per-class inputs are dicts keyed by class name ('1'…'22', 'X', 'Y') with accuracies as fractions in
[0, 1] (as ``metrics.summarize`` gives them) or None for a class without test images; plots show %.
Every write is atomic: the PNG is rendered in memory, then written to a temp file and renamed.
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fsutil import atomic_write_bytes  # noqa: E402
from ..labels import NAMES  # noqa: E402
from .classification import MetricsInputError  # noqa: E402

PerClass = Mapping[str, float | None]


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Render to memory, then write atomically, so readers never see half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)  # pyplot keeps every open figure alive; a long benchmark would leak them
    atomic_write_bytes(path, buf.getvalue())
    return path


def _ordered(per_class: PerClass, where: str) -> list[float | None]:
    """Values in class order 1…22, X, Y as percentages; missing names count as no test images."""
    per_class = {str(k): v for k, v in per_class.items()}
    unknown = sorted(set(per_class) - set(NAMES))
    if unknown:
        raise MetricsInputError(f"{where}: unknown class names {unknown}; expected {', '.join(NAMES)}")
    out: list[float | None] = []
    for name in NAMES:
        v = per_class.get(name)
        if v is not None and not (0.0 <= float(v) <= 1.0):
            raise MetricsInputError(f"{where}: class {name} accuracy {v} is outside [0, 1]; pass fractions "
                                    "(divide percentages by 100)")
        out.append(None if v is None else 100.0 * float(v))
    return out


def _check_table(table: Mapping[str, PerClass]) -> dict[str, list[float | None]]:
    if not table:
        raise MetricsInputError("no models to plot; pass {model name: per-class accuracy dict}")
    return {str(m): _ordered(pc, f"model {m!r}") for m, pc in table.items()}


def _no_data(ax: plt.Axes, x: float, text: str) -> None:
    """Mark a position that has nothing to draw, so a gap is not mistaken for zero."""
    ax.text(x, 0.03, text, transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="bottom",
            fontsize=8, color="0.4")


def confusion_png(cm: np.ndarray, path: str | Path, title: str = "") -> Path:
    """24×24 confusion matrix, each row normalised to the true class's count, labelled 1…22, X, Y."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(8, 7), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(NAMES)), NAMES, fontsize=7)
    ax.set_yticks(range(len(NAMES)), NAMES, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def per_class_png(per_class: PerClass, path: str | Path, title: str = "") -> Path:
    """Bar chart of per-class accuracy (%) in class order 1…22, X, Y; None → no bar, "no test images".

    Bars start at 0 (a cut axis would exaggerate gaps); each bar carries its value, and a dashed
    line marks the macro mean over the classes with test images.
    """
    vals = _ordered(per_class, "per_class_png")
    x = np.arange(len(NAMES))
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    have = [i for i, v in enumerate(vals) if v is not None]
    bars = ax.bar(x[have], [vals[i] for i in have], width=0.75, color="tab:blue")
    ax.bar_label(bars, fmt="%.1f", rotation=90, padding=2, fontsize=7)
    for i in set(range(len(NAMES))) - set(have):
        _no_data(ax, i, "no test images")
    if have:
        mean = float(np.mean([vals[i] for i in have]))
        ax.axhline(mean, ls="--", lw=1, color="tab:red", label=f"macro mean {mean:.2f} %")
        # Above the axes, right: inside it would cover bars or a "no test images" label.
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_xticks(x, NAMES)
    ax.set_xlim(-0.6, len(NAMES) - 0.4)
    ax.set_ylim(0, 112)  # room for the value labels above 100 %
    ax.set_xlabel("chromosome class")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "per-class accuracy", loc="left")
    fig.tight_layout()
    return _save(fig, path)


def _boxes(ax: plt.Axes, data: list[list[float]]) -> None:
    """Tukey boxes (whiskers at 1.5·IQR, linear percentiles: the same rules as metrics.quartiles)."""
    pos = [i for i, d in enumerate(data) if d]
    ax.boxplot([data[i] for i in pos], positions=pos, whis=1.5, widths=0.6, patch_artist=True,
               boxprops={"facecolor": "lightsteelblue"}, medianprops={"color": "black"},
               flierprops={"marker": "o", "markersize": 4, "markerfacecolor": "tab:red", "alpha": 0.7})
    for i in set(range(len(data))) - set(pos):
        _no_data(ax, i, "no data")
    ax.set_xlim(-0.6, len(data) - 0.4)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)


def boxplot_by_class_png(table: Mapping[str, PerClass], path: str | Path, title: str = "") -> Path:
    """The paper's Fig. 4: one box per chromosome class over the baselines' accuracies.

    ``table`` maps model name → per-class accuracy dict; a class without test images for a model
    is left out of that class's box.
    """
    cols = _check_table(table)
    data = [[v[i] for v in cols.values() if v[i] is not None] for i in range(len(NAMES))]
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    _boxes(ax, data)
    ax.set_xticks(range(len(NAMES)), NAMES)
    ax.set_xlabel("chromosome class")
    ax.set_title(title or f"per-class accuracy across {len(cols)} baseline(s)")
    fig.tight_layout()
    return _save(fig, path)


def boxplot_by_model_png(table: Mapping[str, PerClass], path: str | Path, title: str = "") -> Path:
    """The paper's Fig. 5: one box per baseline over its (up to 24) per-class accuracies."""
    cols = _check_table(table)
    data = [[x for x in v if x is not None] for v in cols.values()]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(cols) + 2.5), 4.5), dpi=110)
    _boxes(ax, data)
    ax.set_xticks(range(len(cols)), list(cols), rotation=30, ha="right")
    ax.set_xlabel("baseline")
    ax.set_title(title or "per-class accuracy of each baseline")
    fig.tight_layout()
    return _save(fig, path)


def risk_coverage_png(curve: dict, path: str | Path, threshold: float | None = None, title: str = "") -> Path:
    """Accuracy of the chromosomes left unflagged against the fraction flagged for review."""
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    ax.plot(np.asarray(curve["fraction_flagged"]) * 100, np.asarray(curve["accuracy"]) * 100, lw=1.8)
    if threshold is not None:
        t = np.asarray(curve["threshold"])
        i = int(np.searchsorted(t, threshold)) if len(t) else 0
        i = min(i, len(t) - 1)
        if len(t):
            ax.plot(curve["fraction_flagged"][i] * 100, curve["accuracy"][i] * 100, "o", color="crimson",
                    label=f"threshold {threshold:.3f}")
            ax.legend(loc="lower right")
    ax.set_xlabel("chromosomes flagged for review (%)")
    ax.set_ylabel("accuracy of the unflagged (%)")
    ax.set_title(title or "risk-coverage")
    ax.grid(alpha=0.3)
    return _save(fig, path)
