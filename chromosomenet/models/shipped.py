"""The trained models that ship with the project: ``models/<name>/``, each a timm Hub model repo.

They resolve the same way in a checkout and after ``pip install``: the checkout's ``models/`` folder is the
package ``chromosomenet.shipped_models`` (pyproject maps it), whose wheel holds the default classifier and
the default detector. ``CHROMOSOMENET_MODELS`` points elsewhere (e.g. a folder of downloaded Hub repos).
Each repo holds config.json, model.safetensors, README.md (the card) and, for a classifier whose
cell-level costs were tuned, karyotype_costs.json.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import BadInputError

DEFAULT = "chromosomenet-view-resnet10t-half"   # what `make run`, the Space and `karyotype` use unless told otherwise
DEFAULT_DETECTOR = "chromosomenet-detector-resnet10t-half"  # what `detect` and `karyotype --metaphase` use
COSTS = "karyotype_costs.json"
CALIBRATION = "calibration.json"  # the temperature fitted on validation (``chromosomenet calibrate``)


def models_dir() -> Path:
    if os.environ.get("CHROMOSOMENET_MODELS"):
        return Path(os.environ["CHROMOSOMENET_MODELS"])
    try:
        from .. import shipped_models  # installed (or editable): the checkout's models/ or the wheel's copy
    except ImportError:  # a source tree on sys.path without an install
        return Path(__file__).resolve().parents[2] / "models"
    return Path(shipped_models.__file__).parent


def shipped() -> list[dict]:
    """One dict per shipped model repo: name, path, architecture, test accuracy, weights size."""
    rows = []
    root = models_dir()
    for folder in sorted(p for p in root.glob("*") if (p / "config.json").exists()) if root.is_dir() else []:
        config = json.loads((folder / "config.json").read_text())
        report = folder / "train_report.json"
        metrics = (json.loads(report.read_text()).get("test_metrics") if report.exists() else None) or {}
        weights = folder / "model.safetensors"
        rows.append({"name": folder.name, "path": folder, "architecture": config.get("architecture", "?"),
                     "test_accuracy": metrics.get("accuracy"), "test_ap50": metrics.get("ap50"),
                     "test_recall50": metrics.get("recall50"),
                     "size_mb": weights.stat().st_size / 1e6 if weights.exists() else None,
                     "costs": folder / COSTS if (folder / COSTS).exists() else None})
    return rows


def local_folder(spec: str) -> Path:
    """The folder a ``local-dir:PATH`` spec (or a plain path) names."""
    return Path(spec.removeprefix("local-dir:"))


def costs_beside(spec: str) -> Path | None:
    """The karyotype_costs.json in a model's folder (``local-dir:PATH`` or a path), or None."""
    folder = local_folder(spec)
    return folder / COSTS if (folder / COSTS).is_file() else None


def temperature_beside(spec: str) -> float:
    """The temperature in a model folder's calibration.json (``local-dir:PATH`` or a path); 1.0 without one."""
    path = local_folder(spec) / CALIBRATION
    if not path.is_file():
        return 1.0
    try:
        t = float(json.loads(path.read_text())["temperature"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInputError(path, f"is not a calibration written by `chromosomenet calibrate` ({type(e).__name__})",
                            "run chromosomenet calibrate again, or remove the file") from None
    if not 0 < t < float("inf"):
        raise BadInputError(path, f"holds the temperature {t}, not a positive number", "run chromosomenet calibrate again")
    return t


def default_model(name: str = DEFAULT) -> Path | None:
    """The default shipped model's folder, or None when it is not there."""
    folder = models_dir() / name
    return folder if (folder / "model.safetensors").exists() else None


def default_spec(name: str = DEFAULT) -> str:
    """``local-dir:`` of a shipped model (the default classifier unless named), or a one-line error."""
    folder = default_model(name)
    if folder is None:
        raise BadInputError(models_dir(), f"holds no {name} (neither in the checkout nor installed with the package)",
                            "name a model (local-dir:PATH or hf-hub:ORG/NAME), or set CHROMOSOMENET_MODELS")
    return f"local-dir:{folder}"




def listing() -> str:
    """Text for ``chromosomenet models``: the shipped models and how to load them."""
    rows = shipped()
    if not rows:
        return f"No trained models in {models_dir()} (set CHROMOSOMENET_MODELS, or train one: `make train`)."
    lines = [f"Shipped models ({models_dir()}):"]
    for r in rows:
        acc = (f"{100 * r['test_accuracy']:.2f} % test accuracy" if r["test_accuracy"] is not None else
               f"test AP50 {100 * r['test_ap50']:.2f} %, recall {100 * r['test_recall50']:.2f} %"
               if r["test_ap50"] is not None else "no test score")
        acc += " (default)" if r["name"] in (DEFAULT, DEFAULT_DETECTOR) else ""
        size = f"{r['size_mb']:.1f} MB" if r["size_mb"] is not None else "no weights"
        lines.append(f"  {r['name']:<34} {r['architecture']:<32} {acc}, {size}; "
                     f'timm.create_model("local-dir:{r["path"]}", pretrained=True)')
    return "\n".join(lines)
