"""Untrusted uploads (the Space): size and count caps, cheap image header checks, safe zip extraction.

Everything here refuses with :class:`UploadError`, one sentence naming the file (by its base name:
the server's temp paths mean nothing to the person uploading; the CLI's batches name it by its path)
and what to do, in words that fit the page and the command line alike. Nothing is unpickled;
images are only ever read by Pillow, zips by :mod:`zipfile` after their directory has been checked.
"""
from __future__ import annotations

import io
import stat
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from ..errors import BadInputError
from .images import IMAGE_SUFFIXES

MAX_FILE_BYTES = 20 * 1024 * 1024       # per uploaded file (the server refuses larger uploads too)
MAX_FILES = 300                         # images per cell (a metaphase has ~46; debris and overlaps add some)
MAX_ZIP_TOTAL_BYTES = 200 * 1024 * 1024  # uncompressed, summed over the zip's members, checked before extracting
MAX_MEMBER_BYTES = MAX_FILE_BYTES       # uncompressed, per zip member
MAX_METAPHASE_PIXELS = 40_000_000       # a metaphase photo (the Tseng release: 912×714)


class UploadError(BadInputError):
    """An upload the Space refuses; ``str()`` is the sentence shown in the page."""

    def __init__(self, name: str, problem: str, fix: str):
        super().__init__(Path(str(name)).name or "upload", problem, fix)


@dataclass(frozen=True)
class Upload:
    name: str    # base name, as the user called the file
    data: bytes


def read_upload(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> Upload:
    """The bytes of one uploaded file, refusing missing, empty or oversized files before reading them."""
    p = Path(path)
    name = getattr(path, "orig_name", None) or p.name
    try:
        size = p.stat().st_size
    except OSError:
        raise UploadError(name, "the upload is missing on the server", "upload it again") from None
    if size == 0:
        raise UploadError(name, "the file is empty (0 bytes)", "give the image itself")
    if size > max_bytes:
        raise UploadError(name, f"the file is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit",
                          "use a smaller image")
    return Upload(Path(name).name, p.read_bytes())


def image_size(up: Upload, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the image header alone, refusing non-images and images over ``max_pixels``
    before anything is decoded (Pillow's own decompression-bomb guard is never what the user sees)."""
    if Path(up.name).suffix.lower() not in IMAGE_SUFFIXES:
        raise UploadError(up.name, "is not an image file", f"give {', '.join(sorted(IMAGE_SUFFIXES))} files only")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(up.data)) as im:
                w, h = im.size
    except Image.DecompressionBombError:  # over 2 × Image.MAX_IMAGE_PIXELS: Pillow refuses it at open
        raise UploadError(up.name, f"the image is far too large (over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} "
                          "megapixels)", "use a smaller image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadError(up.name, "is not a readable image (the file is not what its name says, or is damaged)",
                          "give a PNG, JPEG, BMP or TIFF image") from None
    if w * h > max_pixels:
        raise UploadError(up.name, f"the image is {w}×{h} pixels, over the limit of {max_pixels / 1e6:g} megapixels",
                          "use a smaller image")
    return w, h


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member is unsafe to extract, or None."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    mode = info.external_attr >> 16
    if name.startswith(("/", "\\")) or path.is_absolute() or (path.parts and ":" in path.parts[0]):
        return f"member {name!r} has an absolute path"
    if ".." in path.parts:
        return f"member {name!r} points outside the archive (..)"
    if stat.S_ISLNK(mode):
        return f"member {name!r} is a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix type recorded (DOS, Python)
        return f"member {name!r} is not a regular file"
    if info.flag_bits & 0x1:
        return f"member {name!r} is encrypted"
    return None


def _skipped(info: zipfile.ZipInfo) -> bool:
    """Folders and the clutter archivers add (macOS resource forks, hidden files): not images."""
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    return info.is_dir() or not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def safe_extract_images(zip_path: str | Path, dest: str | Path, *, max_files: int = MAX_FILES,
                        max_total: int = MAX_ZIP_TOTAL_BYTES, max_member: int = MAX_MEMBER_BYTES) -> list[Path]:
    """Extract the images of a zip into ``dest`` (flat, by base name); refuse unsafe or oversized zips.

    Checked from the zip's directory before one byte is extracted: every member is a regular file
    with a relative path inside the archive (no ``..``, no absolute path, no symlink, not encrypted);
    at most ``max_files`` images, each at most ``max_member`` bytes uncompressed and all together at
    most ``max_total``; non-image members are refused. While extracting, each member is read at most
    one byte past its declared size, so a lying header cannot inflate it.
    """
    name = getattr(zip_path, "orig_name", None) or Path(zip_path).name
    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UploadError(name, "is not a readable zip archive", "upload a .zip of the cell's images") from None
    with zf:
        members = [i for i in zf.infolist() if not _skipped(i)]
        for info in zf.infolist():
            problem = _member_problem(info)
            if problem:
                raise UploadError(name, problem, "zip the image files themselves")
        others = [i.filename for i in members if PurePosixPath(i.filename).suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            raise UploadError(name, f"holds {len(others)} file(s) that are not images (first: {others[0]!r})",
                              "zip only the cell's chromosome images")
        if not members:
            raise UploadError(name, "holds no images", "zip the cell's chromosome images (PNG/JPEG/BMP/TIFF)")
        if len(members) > max_files:
            raise UploadError(name, f"holds {len(members)} images, over the limit of {max_files}",
                              "upload the images of one cell")
        total = sum(i.file_size for i in members)
        big = next((i for i in members if i.file_size > max_member), None)
        if big is not None:
            raise UploadError(name, f"member {big.filename!r} unpacks to {big.file_size / 2**20:.0f} MB, over the "
                              f"{max_member / 2**20:.0f} MB limit per image", "upload smaller images")
        if total > max_total:
            raise UploadError(name, f"unpacks to {total / 2**20:.0f} MB, over the {max_total / 2**20:.0f} MB limit",
                              "upload the images of one cell")
        bases = [PurePosixPath(i.filename.replace("\\", "/")).name for i in members]
        twice = next((b for b, n in Counter(bases).items() if n > 1), None)
        if twice is not None:
            raise UploadError(name, f"holds two images named {twice!r} in different folders",
                              "give every image of the cell its own name")
        out: list[Path] = []
        dest.mkdir(parents=True, exist_ok=True)
        for info, base in zip(members, bases):
            try:
                with zf.open(info) as src:
                    data = src.read(info.file_size + 1)
            # RuntimeError: zipfile's error for an encrypted member, and (as its subclass) for a compression
            # method it lacks
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
                raise UploadError(name, f"member {info.filename!r} cannot be unpacked ({type(e).__name__})",
                                  "re-create the zip") from None
            if len(data) > info.file_size:
                raise UploadError(name, f"member {info.filename!r} is larger than its header says",
                                  "re-create the zip") from None
            target = dest / base
            target.write_bytes(data)
            out.append(target)
    return out
