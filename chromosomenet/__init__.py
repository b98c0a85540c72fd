"""chromosomenet: dataset + model suite for clinical chromosome classification (ChromosomeNet)."""
from __future__ import annotations

from .errors import BadInputError, ChromosomeNetError, DatasetError
from .labels import NAMES, NUM_CLASSES
from .models import classic as _classic  # noqa: F401  timm.create_model("chromosomenet_cirnet", ...) works
from .samples import sample_cases_dir, sample_dir, sample_metaphases_dir

__version__ = "0.2.0"

__all__ = ["NAMES", "NUM_CLASSES", "BadInputError", "ChromosomeNetError", "DatasetError",
           "sample_dir", "sample_metaphases_dir", "sample_cases_dir", "__version__"]
