"""Open a built dataset (folder or Hub id) for training/evaluation, and say which one it is."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import labels
from ..errors import BadInputError


ALL = "all"  # every split together: for a model trained on other data (e.g. the shipped one on the sample)


def load_splits(data: str, need: tuple[str, ...] = ("train", "validation")):
    """``load_dataset(data)`` checked: the 24 ClassLabel names in order, the needed splits non-empty.

    Asking for ``"all"`` adds that split: every split concatenated, in the order train, validation, test.
    """
    from datasets import concatenate_datasets, load_dataset

    try:
        splits = load_dataset(str(data))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise BadInputError(data, f"cannot open the dataset ({type(e).__name__})",
                            "give a folder made by `chromosomenet build-dataset` or a cached Hub dataset id") from None
    first = next(iter(splits.values()))
    feature = first.features.get("label")
    names = getattr(feature, "names", None)
    if names != list(labels.NAMES):
        raise BadInputError(data, f"its 'label' is not the 24 ChromosomeNet classes (found {names!r:.80})",
                            "rebuild it with `chromosomenet build-dataset` so labels are 1..22, X, Y")
    if ALL in need and ALL not in splits:
        order = [k for k in ("train", "validation", "test") if k in splits] + sorted(set(splits) - {"train", "validation", "test"})
        splits[ALL] = concatenate_datasets([splits[k] for k in order])
    for split in need:
        if split not in splits or len(splits[split]) == 0:
            raise BadInputError(data, f"has no {split!r} split or it is empty (splits: {', '.join(splits)})",
                                "rebuild with ratios that give every split images")
    return splits


def _local(data: str) -> Path | None:
    p = Path(data)
    return p if (p / "manifest.csv").exists() else None


def dataset_identity(data: str, splits) -> str:
    """Manifest sha256 for a built folder (content-addressed), else the datasets fingerprint."""
    folder = _local(data)
    if folder is not None:
        return "manifest:" + hashlib.sha256((folder / "manifest.csv").read_bytes()).hexdigest()
    return "fingerprint:" + ":".join(f"{k}={v._fingerprint}" for k, v in sorted(splits.items()))


def describe(data: str, splits) -> dict:
    """Facts for model cards and reports: id, name, license, split policy, manifest hash, sizes."""
    folder = _local(data)
    report = {}
    license_id = "cc-by-4.0"
    if folder is not None:
        if (folder / "build_report.json").exists():
            report = json.loads((folder / "build_report.json").read_text())
        from huggingface_hub import DatasetCard

        license_id = DatasetCard.load(folder / "README.md").data.to_dict().get("license", license_id)
    return {"dataset_id": str(data), "dataset_name": Path(str(data)).name, "license": license_id,
            "split_policy": report.get("policy", "unknown"),
            "manifest_sha256": report.get("manifest_sha256", dataset_identity(data, splits)),
            "n_train": len(splits["train"]) if "train" in splits else 0,
            "n_val": len(splits["validation"]) if "validation" in splits else 0,
            "n_test": len(splits["test"]) if "test" in splits else 0}


def with_rehearsal(train, extra, rows: int, seed: int = 0):
    """``train`` followed by whole cells of ``extra`` (seeded order) until about ``rows`` of them are in: the
    rehearsal that keeps an adapted model reading its first lab. Only the columns both have are kept, in
    ``train``'s types, so two trees of different metadata (a lab's cells, Tseng's) concatenate."""
    import random

    from datasets import concatenate_datasets

    keep = [c for c in train.column_names if c in extra.column_names]
    if "image" not in keep or "label" not in keep:
        raise BadInputError("rehearsal data", "has no image / label columns shared with the lab's data",
                            "rehearse on a dataset built by `chromosomenet build-dataset`")
    extra = extra.select_columns(keep)
    if "cell_id" in keep:  # whole cells: each is read at its own reference scale, as prediction reads it
        cells = sorted(set(extra["cell_id"]))
        random.Random(seed).shuffle(cells)
        of = {c: [] for c in cells}
        for i, c in enumerate(extra["cell_id"]):
            of[c].append(i)
        picked: list[int] = []
        for c in cells:
            if len(picked) >= rows:
                break
            picked += of[c]
    else:
        picked = random.Random(seed).sample(range(len(extra)), min(rows, len(extra)))
    base = train.select_columns(keep)
    return concatenate_datasets([base, extra.select(sorted(picked)).cast(base.features)])
