"""The dataset card (OUT/README.md): YAML that `load_dataset` and the Hub read, then prose for people."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from .. import labels
from ..fsutil import atomic_write_text
from ..markdown import table as _table
from .builder import _CITATION
from .buildinfo import BuildConfig, BuildReport
from .splits import SPLITS

if TYPE_CHECKING:
    from pathlib import Path

    from .scan import ScanResult

ATTRIBUTION = "ATTRIBUTION.md"
_LICENSE_LINE = re.compile(r"^\s*license:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)

_POLICY_TEXT = {
    "grouped": ("**grouped** by `{group_by}`: every group (case) lies in exactly one split, so no "
                "person's cells are seen in training and scored in test; class proportions are kept as "
                "close as the groups allow (scikit-learn `StratifiedGroupKFold`, one fold for test, one "
                "of the rest for validation)."),
    "stratified": ("**stratified** per instance (the paper's random stratified sampling): each class is "
                   "shuffled with the seed and cut so every class is within one instance of its share of "
                   "every split. Cells of one case can fall in different splits; prefer the grouped "
                   "split for claims about new patients."),
    "from-metadata": ("**from the source's metadata**: each image is in the split its release assigns "
                      "(the `split` column of the raw tree's `metadata.csv`, `val` read as validation), "
                      "not one drawn by this tool, so scores compare with others using the official "
                      "split. Ratios and seed matter only where validation had to be carved out of train "
                      "(said in a note below). Whether one `{group_by}` has images in several splits is "
                      "the release's choice: the build checks it where groups are known and warns below "
                      "if so."),
}


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def read_attribution(raw: Path) -> tuple[str | None, str]:
    """(license id or None, Markdown text) from the raw tree's ATTRIBUTION.md, if it has one."""
    path = raw / ATTRIBUTION
    if not path.exists():
        return None, ""
    text = path.read_text(encoding="utf-8").strip()
    match = _LICENSE_LINE.search(text)
    return (match.group(1) if match else None), text


def _body(info: datasets.DatasetInfo, report: BuildReport, scan: ScanResult, cfg: BuildConfig,
          license_id: str, attribution: str) -> str:
    present = [s for s in SPLITS if sum(report.counts[s])]
    sizes = [[s, sum(report.counts[s])] + ([report.n_groups.get(s, 0)] if report.n_groups else [])
             for s in present]
    size_header = ["split", "images"] + (["groups"] if report.n_groups else [])
    class_rows = [[name, labels.DENVER_GROUP[i], i] + [report.counts[s][i] for s in present]
                  for i, name in enumerate(labels.NAMES)]
    columns = "\n".join(f"- `{name}`: {feat!r}".replace("\n", " ") for name, feat in info.features.items())
    policy = _POLICY_TEXT[report.policy].format(group_by=cfg.group_by)
    # the attribution's own headings sit under this card's "Source data" section
    source = re.sub(r"^#", "###", attribution, flags=re.MULTILINE) or (
        "No `ATTRIBUTION.md` was found in the raw tree, so the source and license of these images are "
        "not recorded here; add one and rebuild.")
    return f"""
# ChromosomeNet-format G-band chromosome dataset: `{scan.root.name}`

G-banded chromosome instances for 24-class chromosome classification, in the layout of the
ChromosomeNet benchmark (Lin et al., 2022): each image is one chromosome centred, **unscaled**, on a
white {cfg.canvas}×{cfg.canvas} 8-bit grayscale canvas, so its size stays a class cue. Labels are the paper's
class ids 0–23 with names `1`…`22`, `X`, `Y` (0–21 = chromosomes 1–22, 22 = X, 23 = Y).

{report.total} images; built from `{scan.root.name}` ({scan.layout} folder layout) by `chromosomenet build-dataset`.

## How to load

```python
from datasets import load_dataset

ds = load_dataset("path/to/this/folder")   # or the Hub id of this repo
names = ds["train"].features["label"].names  # ['1', ..., '22', 'X', 'Y']
```

## Splits

Policy: {policy}

{"".join(f"**Warning:** {w}" + chr(10) + chr(10) for w in report.warnings)}{"".join(f"Note: {n}." + chr(10) + chr(10) for n in report.notes)}Ratios {'/'.join(f'{r:g}' for r in report.ratios)}, seed {report.seed}. The split is fixed in `manifest.csv`
(sha256 `{report.manifest_sha256}`): the same input and seed give a byte-identical manifest.

{_table(size_header, sizes)}

## Images per class and split

{_table(["class", "Denver group", "id"] + present, class_rows)}

## Columns

{columns}

`manifest.csv` lists every image with its sha256, original width and height, group and split.
{len(report.duplicates)} duplicate file(s) within a class were kept once; {len(report.skipped)} file(s) were skipped
as unreadable (listed in `build_report.json`).

## Source data and attribution

{source}

## License

`{license_id}`

## Limitations

Research data, not a medical device. Instances come from the source's cells and hospital(s) only;
accuracy on other laboratories, banding protocols or microscopes is unknown. Where instances were cut
from metaphase images, touching or overlapping neighbours can leave part of a neighbour in an image
(see the `quality` column when present).

## Citation

The benchmark layout and baselines:

```bibtex
{_CITATION}
```

Cite the source data as its attribution above asks.
"""


def write_card(stage: Path, info: datasets.DatasetInfo, report: BuildReport, scan: ScanResult,
               cfg: BuildConfig) -> None:
    license_found, attribution = read_attribution(scan.root)
    license_id = cfg.license or license_found or "unknown"
    data = DatasetCardData(
        license=license_id,
        task_categories=["image-classification"],
        tags=["biology", "medical", "cytogenetics", "chromosome", "karyotype", "g-banding"],
        size_categories=[_size_category(report.total)],
        pretty_name=f"ChromosomeNet-format chromosomes ({scan.root.name})",
    )
    info.config_name = "default"
    files = [{"split": s, "path": f"data/{s}-*"} for s in SPLITS if sum(report.counts[s])]
    MetadataConfigs({"default": {"data_files": files}}).to_dataset_card_data(data)
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    body = _body(info, report, scan, cfg, license_id, attribution)
    atomic_write_text(stage / "README.md", str(DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}")))
