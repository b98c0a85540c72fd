"""What the Space's tests share: the sample's files, zips made of them, a PNG that only claims to be huge, a free
loopback port."""
from __future__ import annotations

import re
import socket
import struct
import zipfile
import zlib
from pathlib import Path

import chromosomenet

SAMPLE = chromosomenet.sample_dir()

METAPHASE = Path(__file__).parent / "fixtures/tseng/24_chromosomes_object"

ISCN = re.compile(r"^\d{2},[XY?]+(,[+-](\d{1,2}))*$")

PNG = (SAMPLE / "0/103181_00.png").read_bytes()


def cell_files(cell: str) -> list[Path]:
    return sorted(SAMPLE.glob(f"*/{cell}_*.png"))



def zip_of(path: Path, files: list[Path]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for f in files:
            z.write(f, f.name)
    return path



def zip_members(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, "/etc/passwd")
    return path



def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header says w×h but that holds one row: what a decompression bomb looks like up front."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" + b"\xff" * 64)) + chunk(b"IEND", b""))



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

