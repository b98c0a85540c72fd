"""The trained models that ship with the project: ``models/<name>/``, each a timm Hub model repo.

``CHROMOSOMENET_MODELS`` points elsewhere (e.g. a folder of downloaded repos); by default the
checkout's top-level ``models/`` folder is used. Each repo holds config.json, model.safetensors,
README.md (the card) and, where the cell-level costs were tuned, karyotype_costs.json.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT = "chromosomenet-view-resnet10t-half"   # what `make run`, the Space and `karyotype` use unless told otherwise
COSTS = "karyotype_costs.json"


def models_dir() -> Path:
    return Path(os.environ.get("CHROMOSOMENET_MODELS", Path(__file__).resolve().parents[2] / "models"))


def shipped() -> list[dict]:
    """One dict per shipped model repo: name, path, architecture, test accuracy, weights size."""
    rows = []
    root = models_dir()
    for folder in sorted(p for p in root.glob("*") if (p / "config.json").exists()) if root.is_dir() else []:
        config = json.loads((folder / "config.json").read_text())
        report = folder / "train_report.json"
        metrics = json.loads(report.read_text()).get("test_metrics") if report.exists() else None
        weights = folder / "model.safetensors"
        rows.append({"name": folder.name, "path": folder, "architecture": config.get("architecture", "?"),
                     "test_accuracy": metrics["accuracy"] if metrics else None,
                     "size_mb": weights.stat().st_size / 1e6 if weights.exists() else None,
                     "costs": folder / COSTS if (folder / COSTS).exists() else None})
    return rows


def costs_beside(spec: str) -> Path | None:
    """The karyotype_costs.json in a model's folder (``local-dir:PATH`` or a path), or None."""
    folder = Path(spec.split(":", 1)[1] if spec.startswith("local-dir:") else spec)
    return folder / COSTS if (folder / COSTS).is_file() else None


def default_model() -> Path | None:
    """The default shipped model's folder, or None when it is not there."""
    folder = models_dir() / DEFAULT
    return folder if (folder / "model.safetensors").exists() else None


def listing() -> str:
    """Text for ``chromosomenet models``: the shipped models and how to load them."""
    rows = shipped()
    if not rows:
        return f"No trained models in {models_dir()} (set CHROMOSOMENET_MODELS, or train one: `make train`)."
    lines = [f"Shipped models ({models_dir()}):"]
    for r in rows:
        acc = f"{100 * r['test_accuracy']:.2f} % test accuracy" if r["test_accuracy"] is not None else "no test score"
        size = f"{r['size_mb']:.1f} MB" if r["size_mb"] is not None else "no weights"
        lines.append(f"  {r['name']:<34} {r['architecture']:<32} {acc}, {size}; "
                     f'timm.create_model("local-dir:{r["path"]}", pretrained=True)')
    return "\n".join(lines)
