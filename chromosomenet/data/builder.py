"""The `datasets` builder that packs a split manifest into Parquet with image bytes embedded.

It is a ``GeneratorBasedBuilder`` so that the Hub convention (``dataset_script/chromosomenet.py``)
and ``datasets``' own writer (sharding, Arrow schema, dataset_info) do the packing; it is not
shipped as a loading script because ``datasets`` >= 4 refuses those. What ships is its output.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import datasets

from .. import labels
from .images import CANVAS, canvas_png
from .scan import read_metadata
from .splits import SPLITS

_CITATION = """\
@article{lin2022chromosomenet,
  title   = {ChromosomeNet: A massive dataset enabling benchmarking and building baselines of
             clinical chromosome classification},
  author  = {Lin, Chengchuang and Chen, Hanbiao and Huang, Jiesheng and Peng, Jing and Guo, Li and
             Yang, Zhirong and Du, Jiahua and Li, Shuangyin and Yin, Aihua and Zhao, Gansen},
  journal = {Computational Biology and Chemistry},
  year    = {2022},
  doi     = {10.1016/j.compbiolchem.2022.107731}
}"""

_ARROW = {"int64": datasets.Value("int64"), "float64": datasets.Value("float64"),
          "string": datasets.Value("string")}


def features(metadata_types: dict[str, str]) -> datasets.Features:
    """image, label (24 ClassLabel names in the paper's order), file, group, then metadata columns."""
    base = {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(labels.NAMES)),
            "file": datasets.Value("string"), "group": datasets.Value("string")}
    extra = {c: _ARROW[t] for c, t in metadata_types.items() if c not in base}
    return datasets.Features({**base, **extra})


class ChromosomeNetConfig(datasets.BuilderConfig):
    """Where the manifest and the raw tree are, and the metadata column types found by the scan."""

    def __init__(self, *, manifest: str = "", raw_dir: str = "", canvas: int = CANVAS,
                 metadata_types: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.manifest, self.raw_dir, self.canvas = manifest, raw_dir, canvas
        self.metadata_types = dict(metadata_types or {})


class ChromosomeNet(datasets.GeneratorBasedBuilder):
    """G-band chromosome instances on the paper's 300x300 canvas, 24 classes, fixed splits."""

    BUILDER_CONFIG_CLASS = ChromosomeNetConfig
    VERSION = datasets.Version("1.0.0")
    DEFAULT_WRITER_BATCH_SIZE = 500  # rows buffered per write: memory stays flat with dataset size

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="G-band chromosome instances centred, unscaled, on a white canvas (ChromosomeNet layout).",
            features=features(self.config.metadata_types),
            citation=_CITATION,
            supervised_keys=datasets.info.SupervisedKeysData("image", "label"),
        )

    def _manifest(self, split: str | None = None):
        """Stream the manifest's rows (of one split): nothing per image is held in memory."""
        with open(self.config.manifest, newline="", encoding="utf-8") as f:
            yield from (r for r in csv.DictReader(f) if split is None or r["split"] == split)

    def _split_generators(self, dl_manager):
        present = {r["split"] for r in self._manifest()}
        return [datasets.SplitGenerator(name=s, gen_kwargs={"split": s}) for s in SPLITS if s in present]

    def _generate_examples(self, split: str):
        root = Path(self.config.raw_dir)
        meta = read_metadata(root, {r["file"]: int(r["label"]) for r in self._manifest(split)})
        for r in self._manifest(split):
            path = os.path.join(root, r["file"])
            with open(path, "rb") as f:
                png = canvas_png(f.read(), path, self.config.canvas)
            yield r["file"], {**meta.get(r["file"]), "image": {"bytes": png, "path": r["file"]},
                              "label": int(r["label"]), "file": r["file"], "group": r["group"] or None}
