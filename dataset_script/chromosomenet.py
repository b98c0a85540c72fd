"""ChromosomeNet-format dataset: the Hub builder entry (HF convention: ``<name>.py``).

Why this is not a loading script: ``datasets`` >= 4 refuses to run dataset scripts
(``RuntimeError: Dataset scripts are no longer supported``), so a Hub repo that shipped only this
file could not be opened with ``load_dataset``. What ships instead is this builder's *output*:
Parquet shards with the image bytes embedded plus a README.md whose YAML names the splits and the
24 ``ClassLabel`` names; ``load_dataset(folder_or_repo)`` opens that with no code at all.

The builder class (``chromosomenet.data.builder.ChromosomeNet``, a ``datasets.GeneratorBasedBuilder``)
is what ``chromosomenet build-dataset`` runs; this file exposes it under the conventional name and
runs the whole build standalone:

    python dataset_script/chromosomenet.py RAW OUT [build-dataset options]
"""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder is sys.path[0] and this file would shadow the package of
# the same name: drop the folder so `import chromosomenet` finds the library.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

from chromosomenet.apps.cli import main  # noqa: E402
from chromosomenet.data.builder import ChromosomeNet, ChromosomeNetConfig  # noqa: E402

__all__ = ["ChromosomeNet", "ChromosomeNetConfig"]

if __name__ == "__main__":
    sys.exit(main(["build-dataset", *sys.argv[1:]]))
