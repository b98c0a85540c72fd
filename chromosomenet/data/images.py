"""Decode, validate and normalise one chromosome image to the paper's canvas.

The documented conversion rule (any input → 8-bit grayscale on a white canvas):
  * ``L`` is kept; ``1`` (bilevel) maps to 0/255.
  * Palette (``P``/``PA``) images are expanded through their palette first.
  * Images with alpha (``RGBA``, ``LA``, ``PA``…) are composited over white (the canvas colour),
    so transparent pixels become background.
  * Colour (``RGB``, ``CMYK``, ``YCbCr``) becomes luma, ITU-R 601-2 (Pillow's ``convert("L")``).
  * 16-bit (``I;16*``) and 32-bit integer (``I``) images are read as 16-bit intensities and mapped
    linearly 0..65535 → 0..255 (``round(v / 257)``); float (``F``) images are refused.
  * An image smaller than the canvas is pasted, unscaled, at its centre (size is a class cue:
    never stretch); one larger than the canvas is refused (re-import it scaled to fit).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BadInputError

CANVAS = 300
BACKGROUND = 255
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Decoded:
    image: Image.Image  # 8-bit 'L', canvas × canvas
    width: int          # of the file as stored
    height: int
    canonical: bool     # the file already is an 8-bit grayscale canvas PNG: embed its bytes as-is


def _to_gray8(im: Image.Image, path: str) -> Image.Image:
    if im.mode == "L":
        return im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        white = Image.new("RGBA", im.size, (BACKGROUND,) * 4)
        return Image.alpha_composite(white, im.convert("RGBA")).convert("L")
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.float64)
        return Image.fromarray(np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        raise BadInputError(path, "floating-point image", "save it as 8- or 16-bit grayscale PNG")
    return im.convert("L")


def _open(data: bytes, path: str) -> Image.Image:
    """Fully decoded (so truncation is caught); ``path`` names the file in errors."""
    if not data:
        raise BadInputError(path, "empty file (0 bytes)", "re-export the image or remove the file")
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except UnidentifiedImageError:
        raise BadInputError(path, "not an image file (Pillow cannot identify it)",
                            "remove it or replace it with a PNG") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadInputError(path, f"truncated or corrupt image ({e})",
                            "re-export the image or remove the file") from None
    return im


def decode_gray(data: bytes, path: str) -> np.ndarray:
    """Any image (a whole metaphase too) as 8-bit grey by the rule above, at its own size."""
    return np.asarray(_to_gray8(_open(data, path), path))


def decode(data: bytes, path: str, canvas: int = CANVAS) -> Decoded:
    """Fully decode ``data`` (so truncation is caught) and normalise it; ``path`` names it in errors."""
    im = _open(data, path)
    width, height = im.size
    if width > canvas or height > canvas:
        raise BadInputError(path, f"image is {width}x{height}, larger than the {canvas}x{canvas} canvas",
                            "re-import it scaled to fit (the importers scale and record the factor)")
    canonical = im.format == "PNG" and im.mode == "L" and im.size == (canvas, canvas)
    gray = _to_gray8(im, path)
    if gray.size != (canvas, canvas):
        page = Image.new("L", (canvas, canvas), BACKGROUND)
        page.paste(gray, ((canvas - width) // 2, (canvas - height) // 2))
        gray = page
    return Decoded(gray, width, height, canonical)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def canvas_png(data: bytes, path: str, canvas: int = CANVAS) -> bytes:
    """The bytes to embed: the file itself when already canonical, else the normalised PNG.

    Only the header is read for canonical files (they were fully validated by the scan).
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "PNG" and im.mode == "L" and im.size == (canvas, canvas):
                return data
    except (UnidentifiedImageError, OSError) as e:
        raise BadInputError(path, f"cannot read image ({e})", "rebuild the dataset") from None
    return png_bytes(decode(data, path, canvas).image)
