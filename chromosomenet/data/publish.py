"""A built dataset folder: its summary (``info``) and its upload to the Hub (``push-dataset``)."""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

from huggingface_hub import DatasetCard, HfApi

from .. import labels
from ..errors import BadInputError
from .splits import SPLITS


def check_built(folder: str | Path) -> Path:
    """The folder, if it holds what build-dataset writes; else one clear error."""
    folder = Path(folder)
    for need in ("README.md", "manifest.csv"):
        if not (folder / need).is_file():
            raise BadInputError(folder, f"is not a built dataset (no {need})",
                                "run `chromosomenet build-dataset RAW OUT` first and pass OUT")
    if not any((folder / "data").glob("*.parquet")):
        raise BadInputError(folder / "data", "holds no Parquet shards", "rebuild the dataset")
    return folder


def dataset_summary(folder: str | Path) -> str:
    """Classes, counts per split, split policy and manifest hash of a built dataset folder."""
    folder = check_built(folder)
    card = DatasetCard.load(folder / "README.md").data.to_dict()
    feature = next((f for f in card.get("dataset_info", {}).get("features", []) if f["name"] == "label"), None)
    names = list(feature["dtype"]["class_label"]["names"].values()) if feature else []
    manifest = (folder / "manifest.csv").read_bytes()
    rows = list(csv.DictReader(manifest.decode("utf-8").splitlines()))
    per = Counter((r["split"], int(r["label"])) for r in rows)
    report_path = folder / "build_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    present = [s for s in SPLITS if any(r["split"] == s for r in rows)]
    groups = {s: len({r["group"] for r in rows if r["split"] == s and r["group"]}) for s in present}
    lines = [
        f"dataset        {folder}",
        f"license        {card.get('license', 'unknown')}",
        f"classes        {len(names)}: {' '.join(names)}",
        f"split policy   {report.get('policy', 'unknown')} (seed {report.get('seed', '?')}, "
        f"ratios {'/'.join(str(r) for r in report.get('ratios', [])) or '?'})",
        f"manifest       sha256 {hashlib.sha256(manifest).hexdigest()}",
        "split          " + "  ".join(f"{s} {sum(per[s, i] for i in range(labels.NUM_CLASSES))}" for s in present),
    ]
    if any(groups.values()):
        lines.append("groups         " + "  ".join(f"{s} {groups[s]}" for s in present))
    lines.append("per class      " + " ".join(f"{s:>10}" for s in present))
    lines += [f"  {name:>3}        " + " ".join(f"{per[s, i]:>10}" for s in present)
              for i, name in enumerate(labels.NAMES)]
    return "\n".join(lines)


def push_dataset(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create (or reuse) the Hub dataset repo and upload the folder; returns the commit URL."""
    folder = check_built(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                               commit_message="Upload ChromosomeNet-format dataset",
                               ignore_patterns=[".*", "**/.*"])
    return str(getattr(commit, "commit_url", commit))
