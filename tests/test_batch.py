"""A lab's day (the batch stage): a batch of metaphases runs to the end whatever one file is, names each
bad one in one line, keeps an earlier run's rows, and resumes after a kill -9 to the table an
uninterrupted run writes. Real sample metaphases; the bad files are made in the test."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import chromosomenet
from chromosomenet.apps.cli import main
from chromosomenet.pipeline.batch import Item, Refusal, Table, collect, run_batch

META = chromosomenet.sample_metaphases_dir()
GOOD = ("103181", "1032292", "1050161", "1051261")


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


PROGRESS: list[str] = []  # the last run's progress lines (stderr is no terminal here: a line at every tenth)


def cli(argv: list[str], capsys) -> tuple[int, list[str], list[str]]:
    code = main(argv)
    cap = capsys.readouterr()
    PROGRESS[:] = [x for x in cap.err.splitlines() if x.startswith("[")]
    return code, cap.out.splitlines(), [x for x in cap.err.splitlines() if not x.startswith("[")]


def a_day(folder: Path, good=GOOD) -> dict[str, Path]:
    """Good metaphases and one of each bad file a day at the microscope brings."""
    folder.mkdir(parents=True)
    for stem in good:
        shutil.copyfile(META / f"{stem}.jpg", folder / f"{stem}.jpg")
    bad = {"text": folder / "notes.png", "truncated": folder / "cut.jpg", "tiny": folder / "tiny.png",
           "blank": folder / "blank.png"}
    bad["text"].write_text("a metaphase, honestly")
    data = (META / "103181.jpg").read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 3])
    Image.new("L", (40, 30), 120).save(bad["tiny"])
    Image.new("L", (800, 600), 235).save(bad["blank"])
    return bad


@pytest.mark.parametrize("verb,table", [(["detect"], "detections.csv"), (["karyotype", "--metaphase"], "cells.csv")])
def test_a_mixed_batch_runs_to_the_end(tmp_path: Path, capsys, verb, table):
    bad = a_day(tmp_path / "day")
    missing = tmp_path / "not-there.jpg"
    code, out, err = cli(verb + [str(tmp_path / "day"), str(missing), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    named = list(bad.values()) + [missing]
    assert len(err) == len(named) + 1, err  # one line per bad file, then the summary
    for path in named:
        (line,) = [x for x in err[:-1] if x.startswith(f"{path}: ")]
        assert "; " in line  # what went wrong; what to do
    assert err[-1].startswith(f"chromosomenet {verb[0]}: error: 4 ") and "5 refused" in err[-1]
    key = "image" if verb == ["detect"] else "cell"
    assert [r[key] for r in rows_of(tmp_path / "o" / table)] == list(GOOD)  # every good image, once
    assert sum(line.split(":")[0] in GOOD for line in out) == len(GOOD)
    assert PROGRESS and all(x.endswith(" left]") and "images" in x for x in PROGRESS), PROGRESS  # the ETA


def test_a_second_run_adds_to_the_table_and_never_loses_rows(tmp_path: Path, capsys):
    out = tmp_path / "o"
    args = lambda *stems: ["karyotype", "--metaphase", *(str(META / f"{s}.jpg") for s in stems), "--out", str(out)]  # noqa: E731
    assert cli(args("103181", "1032292"), capsys)[0] == 0
    assert cli(args("1050161"), capsys)[0] == 0
    first = (out / "cells.csv").read_text()
    assert [r["cell"] for r in rows_of(out / "cells.csv")] == ["103181", "1032292", "1050161"]
    # the same image again is refused in one line, and the table stays as it was
    code, _, err = cli(args("103181"), capsys)
    assert code == 2 and "already in" in err[0] and "--resume" in err[0] and (out / "cells.csv").read_text() == first
    # --overwrite does it again in its place (the same row: the pipeline is deterministic)
    assert cli(args("103181") + ["--overwrite"], capsys)[0] == 0
    assert (out / "cells.csv").read_text() == first
    # --resume skips what is there and does the rest
    code, text, _ = cli(args("103181", "1032292", "1050161", "1051261") + ["--resume"], capsys)
    assert code == 0 and "1 karyotyped" in text[-1] and "3 already done" in text[-1]
    assert [r["cell"] for r in rows_of(out / "cells.csv")] == ["103181", "1032292", "1050161", "1051261"]
    for stem in ("103181", "1051261"):
        assert (out / "karyograms" / f"{stem}.png").is_file()


def test_a_table_of_another_verb_is_refused_untouched(tmp_path: Path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o/cells.csv").write_text("image,n,notes\nx,1,\n")
    code, _, err = cli(["karyotype", "--metaphase", str(META / "103181.jpg"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "other columns" in err[0] and (tmp_path / "o/cells.csv").read_text() == "image,n,notes\nx,1,\n"


def test_a_killed_batch_resumes_to_the_uninterrupted_tables(tmp_path: Path, capsys):
    """kill -9 in the middle of a folder of case folders, then --resume: cells.csv and cases.csv are
    byte for byte those of a run that was never interrupted, each metaphase once."""
    cases = chromosomenet.sample_cases_dir()
    assert cli(["karyotype", "--metaphase", str(cases), "--out", str(tmp_path / "straight")], capsys)[0] == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "chromosomenet", "karyotype", "--metaphase", str(cases),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "cells.csv").is_file() and len(rows_of(out / "cells.csv")) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    before = rows_of(out / "cells.csv")
    assert 3 <= len(before) < 11
    code, text, _ = cli(["karyotype", "--metaphase", str(cases), "--out", str(out), "--resume"], capsys)
    assert code == 0 and f"{len(before)} already done" in text[-1]
    for name in ("cells.csv", "cases.csv"):
        assert (out / name).read_text() == (tmp_path / "straight" / name).read_text(), name
    keys = [(r["case"], r["cell"]) for r in rows_of(out / "cells.csv")]
    assert len(keys) == len(set(keys)) == 11


def test_collect_names_every_path_that_is_no_image(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "empty").mkdir()
    shutil.copyfile(META / "103181.jpg", tmp_path / "a/103181.jpg")
    (tmp_path / "b").mkdir()
    shutil.copyfile(META / "103181.jpg", tmp_path / "b/103181.jpg")  # the same name from another folder
    (tmp_path / "notes.txt").write_text("x")
    items, refused = collect([tmp_path / "a", tmp_path / "a/103181.jpg", tmp_path / "b", tmp_path / "empty",
                              tmp_path / "notes.txt", tmp_path / "gone.jpg"], tmp_path / "o")
    assert [i.path for i in items] == [tmp_path / "a/103181.jpg"]  # given twice: done once
    problems = {Path(r.path).name: r.problem for r in refused}
    assert problems == {"103181.jpg": f"has the same name as {tmp_path / 'a/103181.jpg'} (the outputs are named by it)",
                        "empty": "holds no image files", "notes.txt": "is not an image file", "gone.jpg": "not found"}


def test_an_unexpected_error_in_one_image_is_a_refusal_not_a_stop(tmp_path: Path):
    """A step that fails in a way no check foresaw (here: a ZeroDivisionError) refuses that image only."""
    items = [Item(tmp_path / f"{k}.png", (str(k),), tmp_path) for k in range(4)]

    def step(it: Item) -> dict:
        return {"image": it.key[0], "n": 1 / (int(it.key[0]) - 2), "notes": ""}

    report = run_batch(items, step, Table(tmp_path / "t.csv", ("image", "n", "notes"), ("image",)))
    assert [r["image"] for r in rows_of(tmp_path / "t.csv")] == ["0", "1", "3"]
    assert report.refused == [Refusal(str(tmp_path / "2.png"), "could not be processed (ZeroDivisionError: division by "
                                      "zero)", "check that the file opens elsewhere; if it does, report this with the file")]
    with pytest.raises(chromosomenet.errors.ChromosomeNetError, match="3 done, 1 refused"):
        report.complete("done")
