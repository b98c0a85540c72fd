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


def to_xml(image_name: str, width: int, height: int, boxes: list[Box], scores: list[float] | None = None,
           names: list[str] | None = None, default_name: str = "chromosome", depth: int = 1, folder: str = "",
           path: str = "") -> str:
    """A Pascal-VOC annotation (as LabelImg and CVAT read it): ``<folder>``, ``<filename>``, ``<path>`` (the
    image file, where known: what ``adapt`` reads a corrected file's chromosomes from), ``<size>`` with
    the image's ``depth`` (3 for colour, 1 for grey), ``<segmented>0``, then one ``<object>`` per box, in the
    image's pixels, with a ``<score>`` where given; :func:`objects` reads it back to the same boxes."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = image_name
    if path:
        ET.SubElement(root, "path").text = path
    size = ET.SubElement(root, "size")
    for tag, v in (("width", width), ("height", height), ("depth", depth)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(root, "segmented").text = "0"
    for k, box in enumerate(boxes):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[k] if names else default_name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        if scores is not None:
            ET.SubElement(obj, "score").text = f"{scores[k]:.4f}"
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bb, tag).text = str(int(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
