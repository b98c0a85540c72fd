"""Installed like a library: the wheel, in a fresh virtual environment outside the checkout, serves the
default classifier and the default detector to every verb that needs a model.

Offline: the wheel is built from this checkout without build isolation, and the fresh environment reuses
the test environment's installed packages (torch, timm, …) through a path file instead of downloading.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import chromosomenet
from chromosomenet.labels import NAMES
from chromosomenet.models import shipped

REPO = Path(__file__).resolve().parents[1]


def canvas_of(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(the fresh environment's bin folder, an environment without this checkout or its models, the wheel)."""
    root = tmp_path_factory.mktemp("install")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
         str(REPO)], cwd=root)
    (wheel,) = (root / "dist").glob("chromosomenet-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    site = Path(run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=root).strip())
    (site / "reuse_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co., no download
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--no-deps", "--no-index",
         "-q", str(wheel)], cwd=root)
    env = {k: v for k, v in os.environ.items() if k not in ("CHROMOSOMENET_MODELS", "PYTHONPATH")}
    env["HF_HUB_OFFLINE"] = "1"
    return venv / "bin", env, wheel


def test_the_wheel_holds_the_defaults_and_not_the_others(installed):
    names = zipfile.ZipFile(installed[2]).namelist()
    for default in (shipped.DEFAULT, shipped.DEFAULT_DETECTOR):
        assert f"chromosomenet/shipped_models/{default}/model.safetensors" in names
    assert not any("chromosomenet-view-resnet18/" in n for n in names)
    assert "chromosomenet/sample_metaphases/1051261.jpg" in names


def test_models_lists_the_defaults_outside_the_checkout(installed, tmp_path: Path):
    bin_, env, _ = installed
    out = run([str(bin_ / "chromosomenet"), "models"], cwd=tmp_path, env=env)
    assert "site-packages" in out and str(REPO) not in out
    assert f"{shipped.DEFAULT} " in out and f"{shipped.DEFAULT_DETECTOR} " in out and "(default)" in out


def test_a_sample_chromosome_and_a_sample_cell_from_the_installed_package(installed, tmp_path: Path):
    from chromosomenet.apps.engine import Engine

    bin_, env, _ = installed
    code = ("import chromosomenet, timm, torch, numpy as np; from PIL import Image; "
            "from chromosomenet.models import shipped; "
            "m = timm.create_model(f'local-dir:{shipped.default_model()}', pretrained=True).eval(); "
            "x = torch.from_numpy(np.asarray(Image.open(next(chromosomenet.sample_dir().glob('17/*.png'))))); "
            "print(m.pretrained_cfg['label_names'][m(x[None, None].float() / 255).argmax()], shipped.default_model())")
    label, where = run([str(bin_ / "python"), "-c", code], cwd=tmp_path, env=env).split()
    here = Engine(f"local-dir:{shipped.default_model()}")  # the checkout's copy of the same weights
    assert label == NAMES[int(here.probs([canvas_of(next(chromosomenet.sample_dir().glob("17/*.png")))]).argmax())]
    assert "site-packages" in where
    cell = sorted(chromosomenet.sample_dir().glob("*/1051261_*.png"))
    out = run([str(bin_ / "chromosomenet"), "karyotype", "--images", *map(str, cell), "--out", "cell"], cwd=tmp_path,
              env=env)
    assert out.startswith("47,XX,+18")
    meta = chromosomenet.sample_metaphases_dir() / "1051261.jpg"
    run([str(bin_ / "chromosomenet"), "karyotype", "--metaphase", str(meta), "--out", "bare"], cwd=tmp_path, env=env)
    with open(tmp_path / "bare/cells.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["boxes_from"] == "detector" and abs(int(row["n"]) - 47) <= 2


def test_serve_without_the_space_packages_says_what_to_install():
    """gradio made unimportable (as in an install without the `space` extra): one line, no traceback."""
    code = ("import sys; sys.modules['gradio'] = None\n"
            "from chromosomenet.apps.cli import main; sys.exit(main(['serve']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "pip install 'chromosomenet[space]'" in r.stderr and "Traceback" not in r.stderr


def test_a_script_beside_a_checkout_folder_is_told_what_happened(tmp_path: Path):
    """A checkout folder named chromosomenet next to a script shadows the package: the import says so."""
    (tmp_path / "chromosomenet").symlink_to(REPO, target_is_directory=True)
    (tmp_path / "script.py").write_text("import chromosomenet\n")
    r = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "found the checkout folder" in r.stderr and "pip install -e" in r.stderr, r.stderr
