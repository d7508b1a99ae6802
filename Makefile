# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATASET ?= demo
# pytest-xdist processes for make test: the slow notebook run goes beside the rest
TEST_WORKERS ?= 2
EXPERIMENT ?= default
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))

.PHONY: setup demo test test-fast notebooks gallery bench bench-scale bench-embeddings bench-selection corpora clean-outputs docs

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	# librosa's numba kernels compiled and cached once, before parallel runs could race to write them (a segfault)
	$(BIN)/python -m audioclust.dsp.numba_cache
	touch $(STAMP)

## demo: generate the embedded demo dataset and run every stage on it
demo: $(STAMP)
	$(BIN)/audioclust demo

## test: the documentation site built strictly (any warning fails), then the whole test suite (notebook runs included) in TEST_WORKERS processes
test: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

## test-fast: skip the slow end-to-end tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "not slow"

## notebooks DATASET=name [EXPERIMENT=exp]: run notebooks 00.. in order with papermill into the experiment's notebooks/ (results/<name>/notebooks/)
notebooks: $(STAMP)
	$(BIN)/audioclust notebooks --dataset $(DATASET) --experiment $(EXPERIMENT)

## gallery: the documentation's figure gallery (docs/gallery/, docs/gallery.md) from a small demo project (~3 min)
gallery: $(STAMP)
	$(BIN)/python docs/gallery.py

## bench: speed and quality benchmarks on ../shared/datasets/fsdd (numbers as JSON in results/bench/)
bench: $(STAMP)
	mkdir -p results/bench
	$(BIN)/python benchmarks/bench_extract.py --out results/bench/extract.json
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_quality.py --root results/bench/fsdd --out results/bench/quality.json
	$(BIN)/python benchmarks/bench_kselect.py --fsdd-root results/bench/fsdd --out results/bench/kselect.json

## bench-scale: stages 01-04 on generated corpora of 1,000 / 10,000 / 50,000 clips, locally and on a Dask LocalCluster (~1 h on 2 cores)
bench-scale: $(STAMP)
	mkdir -p results/bench
	$(BIN)/python benchmarks/bench_scale.py --out results/bench/scale.json --plot docs/scaling.png

## bench-embeddings: pretrained embeddings: speed against the packages' loops, and quality with and without them on 8 label sets (FSDD and generated instruments, speech, textures; ~1 h on 2 cores)
bench-embeddings: corpora
	$(BIN)/python benchmarks/bench_embed.py --wavs ../shared/datasets/fsdd/recordings --out results/bench/embed_speed.json
	$(BIN)/python benchmarks/bench_embeddings.py --root results/bench/embed --corpora results/bench/corpora \
		--sets demo:label textures:class instruments:instrument instruments:pitch_class speech:word speech:voice \
		fsdd:digit fsdd:speaker --out results/bench/embed_quality.json

## bench-selection: regret of the label-free pick before and after the structures, on the 8 label sets of bench-embeddings (shares its folder: ~40 min on 2 cores when that ran first)
bench-selection: corpora
	$(BIN)/python benchmarks/bench_selection.py --root results/bench/embed --corpora results/bench/corpora \
		--out results/bench/selection.json

# the generated corpora of the embedding and selection benchmarks (made once)
corpora: $(STAMP)
	mkdir -p results/bench/corpora
	for kind in instruments speech textures; do test -d results/bench/corpora/$$kind || \
		$(BIN)/python -m audioclust.corpora $$kind results/bench/corpora/$$kind --size bench || exit 1; done

## clean-outputs DATASET=name: remove generated outputs of one dataset (never datasets/<name>/)
clean-outputs:
	rm -rf metadata/$(DATASET) features/$(DATASET) results/$(DATASET) logs/$(DATASET) checkpoints/$(DATASET) datasets/$(DATASET)_wav

## docs: build the documentation site into site/ (mkdocs-material; fails on any warning)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
