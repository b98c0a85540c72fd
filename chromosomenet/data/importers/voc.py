"""Pascal-VOC boxes, shared by the Tseng importer and the Space's metaphase upload."""
from __future__ import annotations

import xml.etree.ElementTree as ET

Box = tuple[int, int, int, int]  # xmin, ymin, xmax, ymax (half-open, as Pillow crops)
BOX_JITTER = 2  # px a box may overhang the image and be clipped as annotation jitter


def objects(root: ET.Element) -> list[tuple[int, str, Box | None]]:
    """(index, class name as annotated, box or None when malformed) per ``<object>``."""
    out = []
    for k, obj in enumerate(root.iter("object")):
        try:
            box = tuple(int(float(obj.findtext(f"bndbox/{t}") or "")) for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            box = None
        out.append((k, (obj.findtext("name") or "").strip(), box))
    return out


def clip(box: Box, width: int, height: int) -> Box | None:
    """The box clipped to the image, or None when it lies outside it by more than jitter or is empty."""
    x0, y0, x1, y1 = box
    clipped = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if (min(x0, y0) < -BOX_JITTER or x1 > width + BOX_JITTER or y1 > height + BOX_JITTER
            or clipped[2] <= clipped[0] or clipped[3] <= clipped[1]):
        return None
    return clipped
