"""The batch stage: a lab's day of images through one step each, to the end whatever one file is.

    items, refused = collect(["day1/", "extra.jpg"])            # every image; the unusable paths named
    report = run_batch(items, step, Table(out / "cells.csv", COLUMNS, ("cell",)), mode="append", refused=refused)

``step(item)`` does one image (writes its files, returns its table row). A bad file (unreadable, not an
image, too small or too large, no chromosomes, anything the step refuses) is named in one line and the
batch goes on; ``report.refused`` holds them all. The table is rewritten atomically after every image,
so a batch killed at any point leaves it holding each finished image exactly once. When the table
already holds rows (an earlier run into the same folder), ``mode`` says what happens to them:

    append     (default) keep them and add this run's images; an image already there is refused: doing it
               again would overwrite its pictures under a row that no longer describes them
    resume     keep them and skip the images already there: an interrupted batch goes on where it stopped
    overwrite  keep the others, do this run's images again and replace their rows
"""
from __future__ import annotations

import csv
import ctypes
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..data.images import IMAGE_SUFFIXES
from ..errors import BadInputError, ChromosomeNetError
from ..fsutil import atomic_write_csv

log = logging.getLogger(__name__)
MODES = ("append", "resume", "overwrite")
PROGRESS_FROM = 4  # a progress bar (with its ETA) for batches of more images than a few


class BatchIncompleteError(ChromosomeNetError):
    """Some images were refused (or gave no result): the message is the batch's summary; every good row is written."""


@dataclass(frozen=True)
class Item:
    path: Path                 # as the user gave it (or found in a folder they gave)
    key: tuple[str, ...]       # what names this image in the table, e.g. (stem,) or (case, stem)
    out: Path                  # where its files go
    case: str = ""


@dataclass(frozen=True)
class Refusal:
    path: str
    problem: str
    fix: str

    @property
    def line(self) -> str:
        return f"{self.path}: {self.problem}; {self.fix}"


@dataclass(frozen=True)
class Table:
    """A CSV of one row per image, named by its ``key`` columns."""
    path: Path
    columns: tuple[str, ...]
    key: tuple[str, ...]

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                header = tuple(reader.fieldnames or ())
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise BadInputError(self.path, f"cannot be read as the table this verb keeps ({type(e).__name__})",
                                "move it away or choose another --out") from None
        if header != self.columns:
            raise BadInputError(self.path, "has other columns than this verb writes (another verb's or an older "
                                "version's table)", "move it away or choose another --out; nothing was changed")
        return rows

    def key_of(self, row: dict) -> tuple[str, ...]:
        return tuple(str(row[k]) for k in self.key)


@dataclass
class BatchReport:
    table: Table
    rows: list[dict]                                       # the whole table after the run
    done: list[dict] = field(default_factory=list)         # this run's rows, in order
    skipped: list[Path] = field(default_factory=list)      # already in the table (resume)
    refused: list[Refusal] = field(default_factory=list)
    kept: int = 0                                          # earlier rows kept

    def summary(self, verb: str, failed: Callable[[dict], bool] = lambda row: False) -> str:
        """'198 karyotyped, 2 refused (a.png, b.jpg); OUT/cells.csv holds 198 row(s)' (``failed``: this run's rows
        that gave no result, e.g. no karyotype called, said apart)."""
        bad = ["/".join(self.table.key_of(r)) for r in self.done if failed(r)]
        parts = [f"{len(self.done) - len(bad)} {verb}"]
        if bad:
            parts.append(f"{len(bad)} with no result ({_few(bad)})")
        if self.refused:
            parts.append(f"{len(self.refused)} refused ({_few([r.path for r in self.refused])})")
        if self.skipped:
            parts.append(f"{len(self.skipped)} already done")
        return (", ".join(parts) + f"; {self.table.path} holds {len(self.rows)} row(s)"
                + (f", {self.kept} from earlier runs" if self.kept else ""))

    def complete(self, verb: str, failed: Callable[[dict], bool] = lambda row: False) -> str:
        """The summary; raises :class:`BatchIncompleteError` with it when an image was refused or gave no result."""
        text = self.summary(verb, failed)
        if self.refused or any(failed(r) for r in self.done):
            raise BatchIncompleteError(text + "; each is named above: mend those files and run again with --resume")
        return text


def _few(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                  and not f.name.startswith("."))


def collect(paths: Iterable, out: Path, case: str = "") -> tuple[list[Item], list[Refusal]]:
    """The images of files and folders (in order, each once) and a refusal for each path that is none:
    missing, not an image file, a folder without images, or an image whose name another already has
    (its outputs are named by it)."""
    items, refused, seen, by_key = [], [], set(), {}
    for p in map(Path, paths):
        if p.is_dir():
            found = _image_files(p)
            if not found:
                refused.append(Refusal(str(p), "holds no image files",
                                       f"give metaphase images ({', '.join(sorted(IMAGE_SUFFIXES))})"))
        elif p.is_file():
            found = [p]
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                refused.append(Refusal(str(p), "is not an image file", f"give {', '.join(sorted(IMAGE_SUFFIXES))} files"))
                continue
        else:
            refused.append(Refusal(str(p), "not found", "give metaphase image files or folders of them"))
            continue
        for f in found:
            if f.resolve() in seen:
                continue
            seen.add(f.resolve())
            key = (case, f.stem) if case else (f.stem,)
            if key in by_key:
                refused.append(Refusal(str(f), f"has the same name as {by_key[key]} (the outputs are named by it)",
                                       "rename one of them"))
                continue
            by_key[key] = f
            items.append(Item(f, key, out, case))
    return items, refused


def _refusal(item: Item, e: Exception) -> Refusal:
    if isinstance(e, BadInputError):  # named by the path the user gave, whatever the stage called it
        return Refusal(str(item.path), e.problem, e.fix)
    log.exception("unexpected error on %s", item.path)
    return Refusal(str(item.path), f"could not be processed ({type(e).__name__}: {e})",
                   "check that the file opens elsewhere; if it does, report this with the file")


def run_batch(items: list[Item], step: Callable[[Item], dict], table: Table, mode: str = "append",
              refused: Iterable[Refusal] = (), on_rows: Callable[[list[dict]], None] | None = None,
              echo: Callable[[dict], str] | None = None, progress: bool = False) -> BatchReport:
    """Every item through ``step``; the table (and ``on_rows`` with all its rows, for tables derived from
    it) rewritten after each. With ``echo``, each row's ``echo(row)`` goes to stdout and each refusal's
    line to stderr as they happen (the CLI); ``progress``: a bar with an ETA on stderr."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    earlier = table.read()
    at = {table.key_of(r): k for k, r in enumerate(earlier)}  # an overwritten row keeps its place
    report = BatchReport(table, earlier, kept=len(earlier), refused=list(refused))
    todo = []
    for it in items:
        if it.key not in at or mode == "overwrite":
            todo.append(it)
        elif mode == "resume":
            report.skipped.append(it.path)
        else:
            report.refused.append(Refusal(str(it.path), f"is already in {table.path}",
                                          "pass --resume to skip it or --overwrite to do it again"))
    show = _Echo(echo, len(todo) if progress else 0)
    for r in report.refused:
        show.refusal(r)
    try:
        for it in todo:
            try:
                row = step(it)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as e:  # one bad file never stops the day's batch
                report.refused.append(_refusal(it, e))
                show.refusal(report.refused[-1])
            else:
                report.done.append(row)
                if it.key in at:
                    report.rows[at[it.key]] = row
                    report.kept -= 1
                else:
                    report.rows.append(row)
                table.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_csv(table.path, table.columns, report.rows)
                if on_rows:
                    on_rows(report.rows)
                show.row(row)
            show.step()
            _give_back_memory()
    finally:
        show.close()
    return report


def _give_back_memory() -> None:
    """Return glibc's free heap to the system after each image: metaphases of every size leave the heap
    fragmented, and a 200-image batch grew by 350 MB without this, by under 40 MB with it (bench/RESULTS.md)."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018  (glibc only: musl, macOS and Windows have none)
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


class _Echo:
    """Lines as the batch goes (rows on stdout, refusals on stderr); on a terminal a tqdm bar with its ETA
    below them, into a log (not a terminal) a line with the ETA at every tenth of the batch instead."""

    def __init__(self, echo: Callable[[dict], str] | None, total: int):
        self.echo, self.bar, self.total, self.n, self.start = echo, None, total, 0, time.monotonic()
        if echo is not None and total >= PROGRESS_FROM and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="image", file=sys.stderr, dynamic_ncols=True, leave=False)

    def _write(self, text: str, file) -> None:
        if self.bar is not None:
            self.bar.write(text, file=file)
        else:
            print(text, file=file, flush=True)

    def row(self, row: dict) -> None:
        if self.echo is not None:
            self._write(self.echo(row), sys.stdout)

    def refusal(self, r: Refusal) -> None:
        if self.echo is not None:
            self._write(r.line, sys.stderr)

    def step(self) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.echo is not None and self.total >= PROGRESS_FROM and self.n < self.total and (
                self.n * 10 // self.total > (self.n - 1) * 10 // self.total):
            spent = time.monotonic() - self.start
            print(f"[{self.n}/{self.total} images, {_clock(spent)} spent, about "
                  f"{_clock(spent / self.n * (self.total - self.n))} left]", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
