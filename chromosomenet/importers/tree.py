"""The end every importer shares: a staged raw tree (folders 0…23) gets its metadata.csv and ATTRIBUTION.md."""
from __future__ import annotations

from pathlib import Path

from .. import labels
from ..fsutil import atomic_write_csv, atomic_write_text


def finish_tree(tmp: Path, rows: list[dict[str, str]], columns, attribution: str) -> None:
    """metadata.csv (rows sorted by file: the same bytes whatever the worker order) and ATTRIBUTION.md;
    class folders left empty are removed (a subset without, say, Y must not leave an empty folder)."""
    rows.sort(key=lambda r: r["file"])
    atomic_write_csv(tmp / "metadata.csv", columns, rows)
    atomic_write_text(tmp / "ATTRIBUTION.md", attribution)
    for i in range(labels.NUM_CLASSES):
        if not any((tmp / str(i)).iterdir()):
            (tmp / str(i)).rmdir()
