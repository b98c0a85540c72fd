"""The embedded real sample's paths (inside the installed package)."""
from __future__ import annotations

from pathlib import Path


def sample_dir() -> Path:
    """The embedded real sample: a raw tree in the paper's layout (folders 0..23 + metadata.csv)."""
    return Path(__file__).parent / "sample"


def sample_metaphases_dir() -> Path:
    """The 22 metaphase images the embedded sample's chromosomes were cut from, with their VOC boxes."""
    return Path(__file__).parent / "sample_metaphases"


def sample_cases_dir() -> Path:
    """Two of the sample's cases, every metaphase of each (a folder per case), with their VOC boxes."""
    return Path(__file__).parent / "sample_cases"


def rehearsal_dir() -> Path:
    """32 whole Tseng training cells of the shipped classifier (a built dataset, train split only) that ``adapt``
    rehearses on so an adapted model keeps reading Tseng's cells (``tools/make_rehearsal.py``)."""
    return Path(__file__).parent / "rehearsal"
