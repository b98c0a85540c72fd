"""A training run folder as a timm-compatible Hub model repo: save, card, load, push.

Reuses timm's own ``save_for_hf`` (config.json + model.safetensors); drops its ``model_args``
key, which transformers refuses, so ``transformers.pipeline`` can load the folder too.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import timm
import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from timm.models import save_for_hf

from .. import labels
from ..errors import BadInputError
from ..fsutil import atomic_write_text
from ..markdown import pct
from ..markdown import table as _table
from ..metrics.figures import confusion_png

# pretrained_cfg keys that point at where *initial* weights came from: not true of the export.
_ORIGIN_KEYS = ("url", "file", "hf_hub_id", "hf_hub_filename", "state_dict", "source", "tag")


def export_cfg(model: torch.nn.Module, img_size: int | None = None, in_chans: int = 3, mean=None, std=None) -> dict:
    """The pretrained_cfg describing exactly the preprocessing the run trained with.

    Without ``img_size`` (canonical-view models, which take the canvas as it is) the model's own
    config stands, less where its initial weights came from.
    """
    cfg = {k: v for k, v in dict(model.pretrained_cfg).items() if k not in _ORIGIN_KEYS}
    if img_size is None:
        return cfg
    cfg.update(input_size=(in_chans, img_size, img_size), interpolation="bilinear", crop_pct=1.0,
               crop_mode="center", mean=tuple(mean), std=tuple(std), num_classes=labels.NUM_CLASSES)
    return cfg


def save(run_dir: str | Path, model: torch.nn.Module, pretrained_cfg: dict) -> None:
    """config.json + model.safetensors into ``run_dir`` (each replaced atomically)."""
    model.pretrained_cfg = pretrained_cfg
    _save(Path(run_dir), model, {"label_names": list(labels.NAMES)}, None)


def save_detector(run_dir: str | Path, model: torch.nn.Module) -> None:
    """A detector's config.json (its working scale and operating point as ``model_args``, which timm
    passes back to the entrypoint on load) + model.safetensors."""
    model.pretrained_cfg = {k: v for k, v in dict(model.pretrained_cfg).items() if k not in _ORIGIN_KEYS}
    _save(Path(run_dir), model, {"label_names": ["chromosome"]}, dict(model.operating))


def _save(run_dir: Path, model: torch.nn.Module, model_config: dict, model_args: dict | None) -> None:
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".export.") as tmp:
        save_for_hf(model, tmp, model_config=model_config, model_args=model_args, safe_serialization=True)
        config = json.loads((Path(tmp) / "config.json").read_text())
        if model_args is None:  # transformers refuses timm's model_args key (classifiers load in pipeline())
            config.pop("model_args", None)
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for name in ("model.safetensors", "config.json"):
            os.replace(Path(tmp) / name, run_dir / name)


def load(spec: str, **kwargs) -> torch.nn.Module:
    """A model from ``local-dir:PATH``, a run folder path, ``hf-hub:ORG/NAME`` or any timm name."""
    if not spec.startswith(("local-dir:", "hf-hub:")) and Path(spec).is_dir():
        spec = f"local-dir:{spec}"
    if spec.startswith("local-dir:"):
        folder = Path(spec.split(":", 1)[1])
        if not (folder / "config.json").exists():
            raise BadInputError(folder, "holds no config.json (not a finished run or model repo)",
                                "train to the end or give a timm model repo folder")
        if not (folder / "model.safetensors").exists():
            raise BadInputError(folder, "holds no model.safetensors", "only safetensors weights are loaded")
    try:
        return timm.create_model(spec, pretrained=True, **kwargs)
    except (OSError, RuntimeError) as e:
        raise BadInputError(spec, f"cannot load the model ({type(e).__name__}: {str(e)[:120]})",
                            "check the id; offline, the Hub repo must already be in the cache") from None


_VIEW_NOTE = """## Input: the canonical view

The model takes the 300×300 canvas (grey or RGB, scaled to [0, 1]; its `pretrained_cfg` mean is 0 and
std 1) and turns it, inside its forward pass, into the *canonical view*: the chromosome rotated about
its ink-weighted centroid so that its principal axis is vertical (longer tail down), cut at native
scale in a 208×96 px window, averaged ×2 down to 104×48 (`chromosomenet.data.view`). Size stays a class
cue and the pixels go to the chromosome. A chromosome that does not fit is shrunk to fit, never cut.
In eval mode it also reads the view turned 180° (the axis has no sign: p-arm up or down) and
returns the mean of the two logit vectors; `model.tta = False` gives one pass at twice the speed.
Load it after `import chromosomenet` (which registers the architecture with timm).
"""


def files_of(spec: str, patterns: tuple[str, ...] = ("verifier.*",)) -> Path | None:
    """The folder holding a model repo's extra files (``patterns``): a local folder as it is; an ``hf-hub:``
    repo's snapshot of those files (from the cache when offline); None for a bare timm name or no snapshot."""
    if spec.startswith("hf-hub:"):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(spec.split(":", 1)[1], allow_patterns=list(patterns)))
        except (LocalEntryNotFoundError, OSError):
            return None
    folder = Path(spec.removeprefix("local-dir:"))
    return folder if folder.is_dir() else None


def repo_name(model: str) -> str:
    """Hub repo name of a model: ``chromosomenet-resnet50``, ``chromosomenet-view-resnet18``."""
    return model.replace("_", "-") if model.startswith("chromosomenet") else f"chromosomenet-{model}"


def write_card(run_dir: str | Path, facts: dict, metrics: dict | None, cm=None) -> None:
    """README.md model card (+ confusion.png) from the run's facts and its test metrics."""
    run_dir = Path(run_dir)
    name = facts["model"]
    repo = repo_name(name)
    is_hub_id = "/" in facts["dataset_id"] and not Path(facts["dataset_id"]).exists()
    # a local build is named by its folder (the manifest hash identifies it), never by a machine's path
    data_shown = facts["dataset_id"] if is_hub_id else f"a local build ({Path(facts['dataset_id']).name})"
    results = []
    if metrics and cm is not None:  # None: re-rendering a card whose confusion.png already exists
        confusion_png(cm, run_dir / "confusion.png", f"{name}, test split")
    if metrics:
        for key, label in (("accuracy", "Accuracy"), ("precision", "Precision (macro)"),
                           ("sensitivity", "Sensitivity (macro recall)"),
                           ("specificity", "Specificity (macro)"), ("f1", "F1 (macro)")):
            results.append(EvalResult(task_type="image-classification",
                                      dataset_type=facts["dataset_id"] if is_hub_id else facts["dataset_name"],
                                      dataset_name=facts["dataset_name"], dataset_split="test",
                                      metric_type=key, metric_value=round(metrics[key], 6), metric_name=label))
    data = ModelCardData(library_name="timm", pipeline_tag="image-classification", license=facts["license"],
                         datasets=[facts["dataset_id"]] if is_hub_id else None,
                         tags=["image-classification", "timm", "chromosome", "karyotype", "cytogenetics",
                               "g-banding", "medical"],
                         model_name=repo, eval_results=results or None)
    metric_rows = [[k, pct(metrics[k])] for k in ("accuracy", "precision", "sensitivity",
                                                             "specificity", "f1")] if metrics else []
    per_class = [[c, pct(v)] for c, v in metrics["per_class_accuracy"].items()] if metrics else []
    recipe = [[k, v] for k, v in facts["recipe"].items()]
    body = f"""
# {repo}

`{name}` (timm) fine-tuned to classify single G-banded chromosome images into the 24 classes
`1`…`22`, `X`, `Y`, following the ChromosomeNet baselines (Lin et al., 2022). Input: one chromosome
centred, unscaled, on a white 300×300 canvas; the model sees {facts['input']}
({'one grey channel' if facts['in_chans'] == 1 else 'grey or RGB in'}).
Initial weights: **{facts['init']}**.

## Training

Data: {data_shown} — split policy **{facts['split_policy']}**, manifest sha256
`{facts['manifest_sha256']}`; {facts['n_train']} train / {facts['n_val']} validation / {facts['n_test']} test images.
Best epoch {facts['best_epoch']} of {facts['epochs_run']} (validation loss {facts['best_val_loss']:.4f}); seed {facts['seed']}.

{_table(["setting", "value"], recipe)}

## Test metrics

{_table(["metric", "%"], metric_rows) if metrics else "No test split was available: no test metrics."}

{"Specificity is TN/(TN+FP) per class, macro-averaged; macro averages run over the classes in the test split's truth or predictions (as scikit-learn)." if metrics else ""}

{("### Per-class accuracy (recall)" + chr(10) + chr(10) + _table(["class", "%"], per_class) + chr(10) + chr(10) + "![confusion matrix](confusion.png)") if metrics else ""}

## Usage

```python
import timm, torch
from PIL import Image

model = timm.create_model("hf-hub:ORG/{repo}", pretrained=True).eval()  # or "local-dir:PATH"
cfg = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**cfg)
image = Image.open("chromosome.png").convert("{'L' if facts['in_chans'] == 1 else 'RGB'}")
probs = model(transform(image).unsqueeze(0)).softmax(-1)
print(model.pretrained_cfg["label_names"][probs.argmax()])
```

```python
from transformers import pipeline

classify = pipeline("image-classification", model="ORG/{repo}")  # or a local folder
classify("chromosome.png")  # [{{'label': '21', 'score': ...}}, ...]
```

{_VIEW_NOTE if name.startswith("chromosomenet_view_") else ""}
## Intended use

Research and teaching: classifying isolated G-banded metaphase chromosomes into the 24 classes, and
pre-sorting a cell into a karyogram (with `chromosomenet karyotype`) for a cytogeneticist to check.

## Limitations

Research model, **not a medical device**: not for diagnosis. Trained on one hospital's cells (amniotic
fluid, one staining protocol and microscope); other laboratories' thinner chromosomes, finer bands and
grey levels cost accuracy (measure it on a few of your cells; `chromosomenet adapt` fine-tunes on them).
It classifies each chromosome from its own crop; touching or overlapping neighbours in the input images lower its
accuracy (the import flags such instances `merged`; they are in the test split and in these numbers).
Size is a cue: the suite's paths read whole cells at one reference scale and greys (each cell's median
chromosome length and ink greys brought to the training cells'), and read a cell's chromosomes together
(every BatchNorm by the cell's own statistics, each chromosome averaged with its mirror image); a single
chromosome is read at its own pixels, the training lab's scale (about 0.1 µm per pixel): pad smaller
images onto a 300×300 white canvas, never resize them.

## Citation

Lin C., Chen H., et al. ChromosomeNet: A massive dataset enabling benchmarking and building baselines of
clinical chromosome classification. *Computational Biology and Chemistry* (2022),
doi:10.1016/j.compbiolchem.2022.107731.
Data: Tseng J.-J. et al. An Open Dataset of Annotated Metaphase Cell Images for Chromosome
Identification. *Scientific Data* 10, 104 (2023), doi:10.1038/s41597-023-02003-7 (CC BY 4.0).
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    atomic_write_text(run_dir / "README.md", str(card))


def push_model(run_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a finished run (config, weights, card, figures, log; not the checkpoint) to the Hub."""
    run_dir = Path(run_dir)
    for need in ("config.json", "model.safetensors", "README.md"):
        if not (run_dir / need).exists():
            raise BadInputError(run_dir, f"is not a finished run (no {need})", "let training finish, then push")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(run_dir), repo_id=repo_id, repo_type="model",
                               commit_message="Upload chromosomenet baseline",
                               ignore_patterns=["checkpoint/*", ".*", "**/.*"])
    return str(getattr(commit, "commit_url", commit))



def write_detector_card(run_dir: str | Path, report: dict, verifier: dict | None = None) -> None:
    """README.md card of a trained detector from its run report (test numbers, recipe, data, limits) and,
    with a ``verifier`` report, the section on the verifier beside it."""
    from .verifier import card_section

    run_dir = Path(run_dir)
    cfg, op, test = report["config"], report["operating_point"], report["test_metrics"]
    repo = repo_name(cfg["model"])
    results = [EvalResult(task_type="object-detection", dataset_type="tseng2023", dataset_name=
                          "Tseng et al. 2023 metaphases (unseen cases)", dataset_split="test", metric_type=k,
                          metric_value=round(test[k], 6), metric_name=n)
               for k, n in (("ap50", "AP50 (class-agnostic)"), ("ap50_95", "AP50:95 (class-agnostic)"),
                            ("recall50", "Recall at IoU 0.5"), ("precision50", "Precision at IoU 0.5"))] if test else None
    data = ModelCardData(library_name="timm", pipeline_tag="object-detection", license="cc-by-4.0",
                         tags=["object-detection", "timm", "torchvision", "fcos", "chromosome", "karyotype",
                               "cytogenetics", "g-banding", "medical"], model_name=repo, eval_results=results)
    d = report["data"]
    rows = [["AP50, class-agnostic (COCO, pycocotools)", pct(test["ap50"]) + " %"],
            ["AP50:95", pct(test["ap50_95"]) + " %"], ["AP75", pct(test["ap75"]) + " %"],
            [f"recall at IoU 0.5 (score ≥ {op['score_threshold']:g})", pct(test["recall50"]) + " %"],
            ["precision at IoU 0.5", pct(test["precision50"]) + " %"],
            [f"metaphases with the exact chromosome count (of {test['images']})", pct(test["exact_count"]) + " %"],
            ["missed / false boxes", f"{test['missed50']} / {test['false_positives50']} of {test['true_boxes']}"],
            ["seconds per metaphase (this CPU, whole image)", f"{test['seconds_per_metaphase']:.3f}"]] if test else []
    recipe = [["architecture", cfg["model"] + " — " + DETECTOR_NOTE],
              ["initial weights", report["init"]],
              ["samples", f"random {cfg['crop']}×{cfg['crop']} crops at scale {op['scale']:g} × e^U(±ln "
                          f"{cfg['augment']['scale_range']:g}), 8 symmetries of the square"],
              ["looks", ", ".join(f"{k} {v}" for k, v in cfg["augment"].items() if k not in ("scale_range", "symmetries"))],
              ["optimiser", f"AdamW lr {cfg['lr']:g}, weight decay {cfg['weight_decay']:g}, one-cycle "
                            f"({report['plan']['total_steps'] if report['plan'] else '?'} steps, warm-up {cfg['pct_start']:g})"],
              ["batch / precision", f"{cfg['batch_size']} crops / {report['precision']}"],
              ["epochs / best (validation AP50:95)", f"{report['epochs_run']} / {report['best_epoch']}"],
              ["training time (2 CPU cores)", f"{report['train_minutes']:.0f} min of epochs; the run "
                                              f"{report['minutes_this_invocation']:.0f} min with scoring, tuning and "
                                              f"test" + (f", on a {cfg['time_budget']:g}-min plan"
                                                          if cfg["time_budget"] else "")],
              ["operating point (tuned on validation for exact counts)",
               f"scale {op['scale']:g}, NMS IoU {op['nms_threshold']:g}, score ≥ {op['score_threshold']:g}"]]
    counts = [[s, v["metaphases"], v["cases"], v["boxes"]] for s, v in d.items()]
    body = f"""
# {repo}

Finds every chromosome of a G-banded metaphase image: one class-agnostic box with a score per
chromosome, for `chromosomenet karyotype --metaphase` to separate, classify and assign. torchvision's
FCOS over a small timm backbone, trained on 2 CPU cores.

## Test numbers (unseen cases)

{_table(["measure", "value"], rows) if test else "No test split: no test numbers."}

## Data

The boxes of the Tseng et al. 2023 release (a 2,031-metaphase subset, CC BY 4.0) minus every case of the
suite's embedded sample, split **by case** as the shipped default classifier's `split_cases.csv`: the
test metaphases are cases neither model saw. `split_cases.csv` and `metaphases.csv` in this folder list
them.

{_table(["split", "metaphases", "cases", "boxes"], counts)}

## Recipe

{_table(["setting", "value"], recipe)}

{card_section(verifier, _table) if verifier else ""}
## Usage

```python
import chromosomenet, timm
from chromosomenet.pipeline.detect import load_detector, read_metaphase

detector = load_detector("local-dir:PATH")     # or "hf-hub:ORG/{repo}"; a timm model underneath:
model = timm.create_model("local-dir:PATH", pretrained=True)  # ChromosomeDetector (FCOS)
found = detector(read_metaphase("metaphase.jpg")[0]).kept   # boxes in the image's pixels, scores
```

```bash
chromosomenet detect metaphases/ --out boxes/            # Pascal VOC + a picture per image
chromosomenet karyotype --metaphase metaphases/ --out cells/
```

## Intended use

Research and teaching: boxing the chromosomes of a metaphase for automatic karyotyping, with a person
correcting the boxes in a VOC tool (CVAT, LabelImg) where needed.

## Limitations

Research model, **not a medical device**. It finds about 96 of every 100 chromosomes and about 4 of
every 100 boxes are not one chromosome (a part, two touching ones as one, a second box on one), so the
count of a metaphase is exact in about a third of the cells: a person checks the boxes (the karyotype
of a wrong count is flagged as a count to confirm). Trained on one hospital's amniotic-fluid cells,
one staining protocol and microscope. It works at a fixed scale (model px per image px) and re-runs once at a
corrected scale when the chromosomes it finds are far from the size it was trained at; other labs'
contrast and blur were simulated in training, not measured. Chromosomes that cross or touch give boxes
that overlap; where two boxes overlap more than the NMS IoU, one can be lost. Stained nuclei and debris
were negatives in training (they are not boxed in the release), not a separate class.

## Citation

Data: Tseng J.-J. et al. An Open Dataset of Annotated Metaphase Cell Images for Chromosome
Identification. *Scientific Data* 10, 104 (2023), doi:10.1038/s41597-023-02003-7 (CC BY 4.0).
Detector: Tian Z. et al. FCOS: Fully Convolutional One-Stage Object Detection. ICCV 2019.
"""
    atomic_write_text(run_dir / "README.md", str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")))


DETECTOR_NOTE = "FCOS (torchvision) over a timm backbone, feature pyramid at strides 8/16/32"
