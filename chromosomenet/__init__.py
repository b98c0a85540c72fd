"""chromosomenet: dataset + model suite for clinical chromosome classification (ChromosomeNet)."""
from __future__ import annotations

from pathlib import Path

from .errors import BadInputError, ChromosomeNetError, DatasetError
from .labels import NAMES, NUM_CLASSES
from .models import classic as _classic  # noqa: F401  timm.create_model("chromosomenet_cirnet", ...) works

__version__ = "0.1.0"

__all__ = ["NAMES", "NUM_CLASSES", "BadInputError", "ChromosomeNetError", "DatasetError",
           "sample_dir", "sample_metaphases_dir", "__version__"]


def sample_dir() -> Path:
    """The embedded real sample: a raw tree in the paper's layout (folders 0..23 + metadata.csv)."""
    return Path(__file__).parent / "sample"


def sample_metaphases_dir() -> Path:
    """The 22 metaphase images the embedded sample's chromosomes were cut from, with their VOC boxes."""
    return Path(__file__).parent / "sample_metaphases"
