"""Models: the paper's baselines as data (``registry``); timm's ``create_model`` is the one door."""
from __future__ import annotations

from . import classic  # noqa: F401  registers the chromosomenet_* prior methods (Table 6) with timm
from . import viewnet  # noqa: F401  registers the chromosomenet_view_* canonical-view classifiers
from . import detector  # noqa: F401  registers the chromosomenet_detector_* chromosome detectors
from .registry import BASELINES, PAPER_BASELINES, Baseline, get, is_known, measure

__all__ = ["BASELINES", "PAPER_BASELINES", "Baseline", "get", "is_known", "measure"]
