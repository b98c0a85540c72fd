"""The 24 chromosome classes of ChromosomeNet: ids, names, Denver groups, folder names.

Class id ``i`` (0..23) is the paper's folder name: 0-21 are chromosomes 1-22, 22 is X, 23 is Y.
"""
from __future__ import annotations

NUM_CLASSES = 24
NAMES: tuple[str, ...] = tuple(str(i) for i in range(1, 23)) + ("X", "Y")

# Denver groups by chromosome size and centromere position (ISCN); X sorts with C, Y with G.
_DENVER = {"A": (1, 3), "B": (4, 5), "C": (6, 12), "D": (13, 15), "E": (16, 18), "F": (19, 20),
           "G": (21, 22)}
DENVER_GROUP: tuple[str, ...] = tuple(
    next(g for g, (lo, hi) in _DENVER.items() if lo <= i <= hi) for i in range(1, 23)
) + ("C", "G")

# Copies per normal diploid cell: two of each autosome; X and Y depend on sex (XX or XY).
NORMAL_AUTOSOME_COPIES = 2


def name_of(class_id: int) -> str:
    """'1'..'22', 'X', 'Y' for a class id 0..23."""
    return NAMES[class_id]


def id_of(name: str) -> int:
    """Class id for a chromosome name ('1'..'22', 'X', 'Y'; case-insensitive for X/Y)."""
    try:
        return NAMES.index(name.upper())
    except ValueError:
        raise KeyError(f"unknown chromosome name {name!r}; expected one of {', '.join(NAMES)}") from None


def id_of_any(name: str) -> int:
    """Class id of a name as this suite writes it ('1' … '22', 'X', 'Y') or as the Tseng release does ('A1' … 'G22')."""
    try:
        return id_of(name.strip())
    except KeyError:
        return id_of_denver_label(name)


def id_of_denver_label(label: str) -> int:
    """Class id for a Denver-prefixed label as in the Tseng release: 'A1', 'C12', 'G22', 'X', 'Y'."""
    label = label.strip()
    if label.upper() in ("X", "Y"):
        return id_of(label)
    group, number = label[:1].upper(), label[1:]
    if not number.isdigit() or not 1 <= int(number) <= 22 or DENVER_GROUP[int(number) - 1] != group:
        raise KeyError(f"unknown chromosome label {label!r}; expected A1..A3, B4, B5, C6..C12, "
                       "D13..D15, E16..E18, F19, F20, G21, G22, X or Y")
    return int(number) - 1
