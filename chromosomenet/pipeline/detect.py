"""The detect stage: a bare metaphase image → one box and score per chromosome.

    detector = load_detector()                      # the shipped default, a folder, or hf-hub:ORG/NAME
    found = detector(read_metaphase("cell.jpg"))     # Detections: boxes in the image's pixels, scores
    detect_files(["cells/"], "out/", detector)       # out/<stem>.xml (Pascal VOC) + out/<stem>.png

The image is read by the rules of :mod:`chromosomenet.data.images` (any mode → 8-bit grey), brought
to the detector's working scale (model px per image px, from its config), padded white to a
multiple of 32 and run once; boxes come back in the input image's pixels. A photo's size says
nothing about its chromosomes' size (the release's metaphases are 440–1,360 px wide around
chromosomes of the same size), so the scale is fixed, not fitted to the frame; when the median box
of that first pass lies far from the size the detector was trained at (another microscope's
magnification), it runs once more at the corrected scale (``auto_scale``).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from ..data import voc
from ..data.images import decode_gray
from ..data.uploads import MAX_METAPHASE_PIXELS, image_size, read_upload
from ..errors import BadInputError
from ..fsutil import atomic_write_bytes, atomic_write_text
from ..models import hub, shipped
from ..models.detector import STRIDE, ChromosomeDetector, is_detector
from .batch import BatchReport, Item, Table, collect, run_batch
from .verify import Seen, Verifier, load_verifier

MAX_FILE_BYTES = 200 * 1024 * 1024  # a 40-megapixel 16-bit TIFF is ~80 MB
# Median long side of a chromosome box at the working scale, in model px (Tseng boxes: 84 px native
# at the median, × 0.6): auto_scale re-runs when a first pass finds boxes more than RESCALE_BAND off it.
TRAINED_MEDIAN_BOX = 50.0
RESCALE_BAND = 1.5
MIN_BOXES_TO_RESCALE = 8
DOUBT_SCORES = (0.4, 0.6)  # without a verifier: a kept box below 0.6, or a left-out one from 0.4, is a doubt
SCALE_LADDER = (1 / 2, 1 / 3, 1 / 4, 2.0)  # tried when the working scale finds fewer boxes than that


class NoChromosomesError(BadInputError):
    """The detector found nothing it would call a chromosome."""


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray        # (N, 4) float32 xmin, ymin, xmax, ymax in the input image's pixels
    scores: np.ndarray       # (N,) float32, descending
    threshold: float         # the operating score threshold: ``kept`` are the detections at or above it
    scale: float             # model px per image px of the pass that gave these boxes
    width: int
    height: int
    notes: tuple[str, ...] = field(default=())
    doubt: np.ndarray | None = None  # (N,) bool: the count depends on this box (a score near the threshold)

    @property
    def kept(self) -> "Detections":
        return self.where(self.scores >= self.threshold)

    def where(self, keep: np.ndarray) -> "Detections":
        """The detections where the (N,) bool ``keep`` is true."""
        return Detections(self.boxes[keep], self.scores[keep], self.threshold, self.scale, self.width,
                          self.height, self.notes, None if self.doubt is None else self.doubt[keep])

    @property
    def left_out_doubts(self) -> np.ndarray:
        """Boxes below the threshold the count may still need (doubts left out): (M, 4)."""
        if self.doubt is None:
            return np.zeros((0, 4), np.float32)
        return self.boxes[(self.scores < self.threshold) & self.doubt]

    def __len__(self) -> int:
        return len(self.scores)

    def int_boxes(self) -> list[tuple[int, int, int, int]]:
        """Half-open integer boxes (as the VOC reader and the importers use them), inside the image."""
        out = []
        for x0, y0, x1, y1 in self.boxes:
            a, b = int(np.floor(x0)), int(np.floor(y0))
            out.append((max(a, 0), max(b, 0), min(max(int(np.ceil(x1)), a + 1), self.width),
                        min(max(int(np.ceil(y1)), b + 1), self.height)))
        return out


def reading_order(boxes: np.ndarray) -> np.ndarray:
    """Indices that order boxes in rows top to bottom, left to right within a row (a row is one
    median box height tall), so a person can find box 17 on the picture."""
    if not len(boxes):
        return np.zeros(0, dtype=int)
    cy, cx = (boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2
    row = np.floor(cy / max(float(np.median(boxes[:, 3] - boxes[:, 1])), 1.0))
    return np.lexsort((cx, row))


class Detector:
    """A loaded chromosome detector: grey metaphase (H, W) uint8 → :class:`Detections`. With a ``verifier``
    (:mod:`.verify`) the boxes are its choice among the detector's candidates and the scores its p."""

    def __init__(self, model: ChromosomeDetector, spec: str = "in memory", auto_scale: bool = True,
                 verifier: Verifier | None = None):
        self.spec, self.model, self.auto_scale, self.verifier = spec, model.eval(), auto_scale, verifier
        self.operating = dict(model.operating)
        if verifier:  # the verifier reads the candidates FCOS merged only where they are near copies
            model.set_operating_point(nms_threshold=verifier.op.pre_nms)

    @torch.inference_mode()
    def see(self, gray: np.ndarray, scale: float) -> Seen:
        """One pass at ``scale``: every candidate above FCOS's floor, and the maps a verifier reads."""
        h, w = gray.shape
        x = torch.tensor(gray, dtype=torch.float32).div_(255.0)[None, None]
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", antialias=scale < 1, align_corners=False)
        pad_h, pad_w = (-size[0]) % STRIDE, (-size[1]) % STRIDE
        x = F.pad(x, (0, pad_w, 0, pad_h), value=1.0)[0]  # white, as the slide around the metaphase
        feature: list[torch.Tensor] = []  # the stride-8 map, caught on its way through for the verifier
        hook = self.model.fcos.backbone.register_forward_hook(lambda _m, _i, maps: feature.append(maps["0"]))
        try:
            out = self.model([x])[0]
        finally:
            hook.remove()
        factor = np.array([size[1] / w, size[0] / h, size[1] / w, size[0] / h], dtype=np.float32)
        boxes = np.clip(out["boxes"].numpy() / factor, 0, [w, h, w, h]).astype(np.float32)
        return Seen(boxes, out["scores"].numpy().astype(np.float32), factor, feature[0], x[None])

    def __call__(self, gray: np.ndarray, scale: float | None = None, name: str = "image") -> Detections:
        """Every detection above FCOS's floor (``.kept``: at or above the operating threshold); ``name``
        names the image in errors."""
        h, w = gray.shape
        op, notes = self.operating, []
        if min(h, w) < op["min_side"]:
            raise BadInputError(name, f"the image is {w}×{h} px, too small to hold a metaphase's chromosomes",
                                f"give the whole metaphase (at least {op['min_side']:g} px on each side)")
        scale = float(scale or op["scale"])
        cap = op["max_side"] / max(h, w)
        if scale > cap:
            notes.append(f"the {w}×{h} image was scaled down to {op['max_side']:g} px on its longer side")
            scale = cap
        seen = self.see(gray, scale)
        if self.auto_scale:
            seen, scale = self._fit_scale(gray, seen, scale, cap, notes)
        if self.verifier:
            c = self.verifier(gray, seen)
            return Detections(c.boxes, c.p, self.verifier.op.threshold, scale, w, h, tuple(notes), c.doubt)
        lo, hi = DOUBT_SCORES  # the detector alone: boxes near its threshold are the count's doubts
        doubt = (seen.scores >= lo) & (seen.scores < hi)
        return Detections(seen.boxes, seen.scores, op["score_threshold"], scale, w, h, tuple(notes), doubt)

    def _strong(self, seen: Seen, scale: float) -> tuple[int, float]:
        """(confident boxes, their median long side in model px) of a pass at ``scale``."""
        kept = seen.boxes[seen.scores >= self.operating["score_threshold"]]
        if not len(kept):
            return 0, 0.0
        return len(kept), float(np.median(np.maximum(kept[:, 2] - kept[:, 0], kept[:, 3] - kept[:, 1]))) * scale

    def _fit_scale(self, gray: np.ndarray, seen: Seen, scale: float, cap: float, notes: list) -> tuple[Seen, float]:
        """The pass at the scale where the chromosomes are the size the detector was trained at. A photo
        enlarged (or shrunk) far from it yields next to nothing: then a ladder of scales finds the one
        with most chromosomes; the median box then corrects the scale."""
        n, median = self._strong(seen, scale)
        if n < MIN_BOXES_TO_RESCALE:
            for f in SCALE_LADDER:  # each rung a multiple of the best scale so far
                s = min(scale * f, cap)
                if s == scale:
                    continue
                got = self.see(gray, s)
                if (strong := self._strong(got, s))[0] > n:
                    seen, (n, median), scale = got, strong, s
            if n < MIN_BOXES_TO_RESCALE:
                return seen, scale
        if not 1 / RESCALE_BAND <= median / TRAINED_MEDIAN_BOX <= RESCALE_BAND:
            better = min(scale * TRAINED_MEDIAN_BOX / median, cap)
            notes.append(f"chromosomes were {median / scale:.0f} px long at the median: detected again at "
                         f"scale {better:.3g} instead of {scale:.3g}")
            scale = better
            seen = self.see(gray, scale)
        return seen, scale


def load_detector(spec: str | None = None, auto_scale: bool = True, verify: bool = False) -> Detector:
    """The detector named by ``spec`` (``local-dir:``, a folder, ``hf-hub:``), by default the shipped one;
    ``verify``: with the verifier saved beside it (opt-in: measured, it fits boxes better but does not yet
    count better, bench/RESULTS.md), else the detector's own boxes, score and NMS."""
    spec = spec or shipped.default_spec(shipped.DEFAULT_DETECTOR)
    model = hub.load(spec)
    if not is_detector(model):
        raise BadInputError(spec, "is not a chromosome detector (its architecture is "
                            f"{model.pretrained_cfg.get('architecture', type(model).__name__)})",
                            "give a chromosomenet-detector model folder or hf-hub id")
    return Detector(model, spec, auto_scale=auto_scale, verifier=load_verifier(hub.files_of(spec)) if verify else None)


def read_metaphase(path: str | Path) -> tuple[np.ndarray, str]:
    """(8-bit grey image, its file name): refuses a non-image, a damaged or truncated file and one over
    the pixel limit (from its header, before decoding) with one line naming the file."""
    up = read_upload(path, MAX_FILE_BYTES)
    image_size(up, MAX_METAPHASE_PIXELS)
    return decode_gray(up.data, up.name), up.name


def voc_source(path: str | Path | None) -> dict:
    """Pascal VOC's ``<folder>``, ``<path>`` and ``<depth>`` of an image file (its header: 3 for colour, 1 for grey)."""
    if path is None:
        return {}
    try:
        with Image.open(path) as im:
            depth = 3 if im.mode in ("P", "PA") else max(1, sum(b != "A" for b in im.getbands()))
    except (OSError, ValueError, SyntaxError):
        depth = 1
    return {"depth": depth, "folder": Path(path).parent.name, "path": str(Path(path).resolve())}


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def draw_boxes(gray: np.ndarray, boxes, texts, path: str | Path, colors=None) -> Path:
    """The metaphase with each box drawn and captioned (its number, or its call) as a PNG."""
    im = Image.fromarray(gray, "L").convert("RGB")
    draw = ImageDraw.Draw(im)
    font = _font(max(11, round(max(im.size) / 70)))
    for k, (box, text) in enumerate(zip(boxes, texts)):
        color = colors[k] if colors else (0, 120, 255)
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=color, width=2)
        draw.text((x0 + 2, y0 + 1), str(text), fill=color, font=font, stroke_width=2, stroke_fill=(255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)  # a picture to look at: encode fast
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def write_detections(found: Detections, image_name: str, gray: np.ndarray, out: Path,
                     names: list[str] | None = None, source: Path | None = None) -> tuple[Path, Path]:
    """OUT/<stem>.xml (VOC, objects in reading order, ``<score>`` each; ``source``, the image file, gives its
    folder and depth) and OUT/<stem>.png (box k: object k)."""
    order = reading_order(found.boxes)
    boxes = [found.int_boxes()[i] for i in order]
    stem = Path(image_name).stem
    xml = voc.to_xml(image_name, found.width, found.height, boxes, [float(found.scores[i]) for i in order],
                     [names[i] for i in order] if names else None, **voc_source(source))
    atomic_write_text(out / f"{stem}.xml", xml)
    return out / f"{stem}.xml", draw_boxes(gray, boxes, [str(k) for k in range(len(boxes))], out / f"{stem}.png")


DETECT_COLUMNS = ("image", "n", "notes")


def detect_files(paths, out: str | Path, detector: Detector, mode: str = "append", echo=None,
                 progress: bool = False) -> BatchReport:
    """Detect every image, to the end whatever one file is (:mod:`.batch`): OUT/<stem>.xml and .png each,
    and OUT/detections.csv a row per image (``image`` its stem, ``n`` boxes, ``notes``); an image where
    nothing is found writes nothing and is refused."""
    out = Path(out)
    items, refused = collect(paths, out)

    def step(it: Item) -> dict:
        gray, name = read_metaphase(it.path)
        found = detector(gray, name=name).kept
        if not len(found):
            raise NoChromosomesError(it.path, "no chromosomes found", "give a G-banded metaphase image")
        out.mkdir(parents=True, exist_ok=True)
        write_detections(found, name, gray, out, source=it.path)
        return {"image": it.path.stem, "n": len(found), "notes": "; ".join(found.notes)}

    return run_batch(items, step, Table(out / "detections.csv", DETECT_COLUMNS, ("image",)), mode, refused,
                     echo=echo, progress=progress)
