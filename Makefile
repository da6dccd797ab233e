# The README's commands. Each creates the virtual environment and installs what is missing.
#   make lesson [LESSON=sgd]   run a lesson's notebooks on their sample data; executed copies in data/runs/
#   make test                  pytest over tests/ (the docs build in it runs every notebook and its tests)
#   make docs                  run the notebooks and build the docs site into build/site (offline)
#   make bench                 Learner.fit against a plain PyTorch loop (prints the time ratio)
PYTHON ?= python3
VENV   ?= .venv
LESSON ?= sgd
BIN    := $(VENV)/bin

# Datasets go to data/ in this repository. Where the read-only sample archives sit beside the clone
# (../shared/datasets), they stand in for the internet; set COURSEKIT_MIRROR yourself to use another.
export COURSEKIT_DATA   ?= $(CURDIR)/data
export COURSEKIT_MIRROR ?= $(if $(wildcard ../shared/datasets/*.tgz),$(abspath ../shared/datasets))

.PHONY: setup browser lesson test nbtest docs serve-docs export bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -c "import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5); print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $@

# Headless Chromium and its driver, from Debian, for the docs site's browser tests (tests/test_docs_site.py).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

lesson: setup
	$(BIN)/coursekit lesson $(LESSON) --out data/runs

# tests/test_docs_site.py builds the docs site (make docs), which runs every notebook top to bottom and fails on a
# failing cell: the notebooks' tests run there, once. `make nbtest` runs them with nbdev's own runner instead.
test: setup browser
	$(BIN)/python -m pytest tests

# One notebook at a time (--n_workers 1): each training notebook already uses every core, and two at once
# make torch's threads wait on each other (on 2 cores the notebooks took 6 min in a row, 17-22 min in parallel).
# Rossmann's training notebook (73) reads the tables its cleaning notebook (72) writes, so it runs last.
nbtest: setup
	$(BIN)/nbdev_test --timing --n_workers 1 --skip_file_re '^73_rossmann'
	$(BIN)/nbdev_test --timing --path nbs/73_rossmann_2_train.ipynb

docs: setup
	$(BIN)/coursekit docs

serve-docs: setup
	$(BIN)/coursekit docs --serve

export: setup
	$(BIN)/nbdev_export

bench: setup
	$(BIN)/python benchmarks/bench_fit.py $(BENCH_ARGS)

clean:
	rm -rf data/runs
