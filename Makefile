# `make run`: set up .venv and run the main job on the embedded real sample.
# `make test`: set up .venv and run the test suite (what .ci/run calls).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/chromosomenet
OUT    ?= out
SAMPLE := chromosomenet/sample
METAPHASES := chromosomenet/sample_metaphases
STAMP  := $(VENV)/.installed

MODEL  ?= models/chromosomenet-view-resnet10t-half
FULL   ?= ../shared/data/tseng2023
WORK   ?= work
BUDGET ?= 110
FINETUNE ?= 40
ARCH   ?= chromosomenet_view_resnet10t_half
DETECTOR ?= models/chromosomenet-detector-resnet10t-half
DET_BUDGET ?= 140
VER_EPOCHS ?= 12
CASES  := chromosomenet/sample_cases

.PHONY: setup run train train-detector train-verifier test bench sample clean baselines rehearsal

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# The browser tests drive Debian's chromium. As root, `make test` installs it with apt-get and says so first;
# otherwise (or with NO_APT=1) those tests skip and say how to get it.
BROWSER := $(VENV)/.browser
$(BROWSER): $(STAMP)
	@command -v chromium >/dev/null || [ -n "$(NO_APT)" ] || [ "$$(id -u)" != 0 ] || { \
		echo "make test: installing the system package chromium with apt-get, as root, for the browser tests (NO_APT=1 skips)"; \
		apt-get update -qq && apt-get install -y -qq chromium; } || true
	touch $@

setup: $(STAMP)

# Main job: embedded sample (22 cells of 22 cases the shipped model never saw) → Parquet + card →
# the shipped model classifies every chromosome and karyotypes every cell → out/demo/README.md.
run: $(STAMP)
	$(CLI) build-dataset $(SAMPLE) $(OUT)/dataset --overwrite
	$(CLI) info $(OUT)/dataset
	$(CLI) demo --model local-dir:$(MODEL) --data $(OUT)/dataset --metaphases $(METAPHASES) --cases $(CASES) --out $(OUT)/demo

# Retrain the shipped model (about $(BUDGET) + $(FINETUNE) min on 2 CPU cores): the full release minus the sample's
# cases imported with separation, grouped split, the canonical-view $(ARCH) from scratch on a time budget; then tune the
# cell-level costs on its validation cells and score its test cells.
train: $(STAMP)
	$(CLI) import-tseng $(FULL) $(WORK)/raw_full --separate --overwrite
	$(PY) tools/without_sample_cases.py $(WORK)/raw_full $(WORK)/raw_train
	$(CLI) build-dataset $(WORK)/raw_train $(WORK)/dataset --split grouped --on-error skip --overwrite
	# stage 1: from scratch, each canvas at its own pixels
	$(CLI) train --model $(ARCH) --data $(WORK)/dataset --out $(WORK)/run_base --init none \
		--time-budget $(BUDGET) --batch-size 64 --lr 2e-3 --weight-decay 0.05 --pct-start 0.2 --rotate 10 \
		--patience 100 --workers 2 --eval-batch-size 256 --no-cell-scale
	# stage 2: each cell at the reference scale and greys, another microscope's looks
	$(CLI) train --model $(ARCH) --data $(WORK)/dataset --out $(WORK)/run --init $(WORK)/run_base \
		--time-budget $(FINETUNE) --batch-size 64 --lr 5e-4 --weight-decay 0.05 --pct-start 0.1 --rotate 10 \
		--patience 100 --workers 2 --eval-batch-size 256 \
		--scale-jitter 0.15 --width-jitter 0.25 --gamma 0.4 --blur 0.5 --noise 0.02
	# costs tuned on the validation cells; then the temperature on them, and the review threshold again on the
	# calibrated confidences with those costs kept (retuning the costs too called one more normal test cell aneuploid)
	$(CLI) karyotype --run $(WORK)/run --data $(WORK)/dataset --split test --out $(WORK)/cells_uncalibrated
	$(CLI) calibrate $(WORK)/run --data $(WORK)/dataset
	$(CLI) karyotype --run $(WORK)/run --data $(WORK)/dataset --split test --out $(WORK)/cells \
		--keep-costs $(WORK)/cells_uncalibrated/costs.json
	$(PY) tools/ship_model.py $(WORK)/run $(WORK)/cells $(MODEL)

test: $(BROWSER)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest

# Numbers for bench/RESULTS.md (needs ../shared/data/tseng2023).
bench: $(STAMP)
	$(PY) bench/bench_data.py

# How the embedded sample was made (from the real release in ../shared/data).
sample: $(STAMP)
	$(CLI) import-tseng $(FULL) $(SAMPLE) --cells tools/sample_cells.txt --separate --overwrite
	for s in $$(cat tools/sample_cells.txt); do cp $(FULL)/24_chromosomes_object/JEPG/$$s.jpg \
		$(FULL)/24_chromosomes_object/annotations/$$s.xml $(METAPHASES)/; done
	for c in 110102 105618; do mkdir -p $(CASES)/$$c; for f in $(FULL)/24_chromosomes_object/JEPG/$$c?.jpg; do \
		cp $$f $(FULL)/24_chromosomes_object/annotations/$$(basename $$f .jpg).xml $(CASES)/$$c/; done; done

clean:
	rm -rf $(OUT)

# Retrain the shipped detector (about $(DET_BUDGET) min on 2 CPU cores): the release's boxes minus the sample's
# cases, split by case as the default classifier's split_cases.csv, its backbone as the start; then ship it.
train-detector: $(STAMP)
	$(CLI) train-detector $(FULL) $(WORK)/detector --split-cases $(MODEL)/split_cases.csv \
		--exclude-cells tools/sample_cells.txt --init $(MODEL) --time-budget $(DET_BUDGET)
	mkdir -p $(DETECTOR)
	cd $(WORK)/detector && cp config.json model.safetensors README.md log.csv train_report.json split_cases.csv \
		metaphases.csv $(abspath $(DETECTOR))/
	$(MAKE) train-verifier

# Retrain the verifier beside the shipped detector (about 20 min on 2 CPU cores: $(VER_EPOCHS) epochs with mining and tuning):
# the detector's own candidates on its own splits, minus the sample's cases; then copy it beside the detector.
train-verifier: $(STAMP)
	$(CLI) train-verifier $(FULL) $(WORK)/verifier --detector $(DETECTOR) --exclude-cells tools/sample_cells.txt \
		--epochs $(VER_EPOCHS)
	$(PY) tools/ship_verifier.py $(WORK)/verifier $(DETECTOR)

# The rehearsal pack `adapt` mixes into a lab's cells (chromosomenet/rehearsal): 32 normal cells of the shipped
# classifier's training cases, from `make train`'s import.
rehearsal: $(STAMP)
	$(PY) tools/make_rehearsal.py $(WORK)/raw_full $(MODEL)/split_cases.csv chromosomenet/rehearsal

# The paper's 8 baselines by one recipe on the full import, split as the default classifier (tools/baselines.py):
# on a CPU, $(BASE_BUDGET) minutes of training each on the canonical view; on a GPU, INPUT=224 and no budget.
INPUT ?= view
BASE_BUDGET ?= 12
baselines: $(STAMP)
	$(PY) tools/baselines.py --release $(FULL) --work $(WORK) --input $(INPUT) $(if $(BASE_BUDGET),--budget $(BASE_BUDGET)) \
		--out $(WORK)/baselines_$(INPUT)
