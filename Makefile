# latent_ebm_nb: the two commands a fresh machine needs are `make demo` and `make test` (`make test-all` is the full tier).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Two cores: never oversubscribe them (see nbs/00_core.ipynb, "Threads").
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export PYTHONUNBUFFERED := 1
# The one-thread rule above is for tests, where workers run side by side; `make demo` uses both cores.
DEMO_THREADS ?= 2

.PHONY: setup browser demo test test-all export check-export clean-nbs docs readme lab clean

$(BIN)/lebm: settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(BIN)/lebm

## setup: virtual environment with the package (editable) and the dev tools
setup: $(BIN)/lebm

## browser: Chromium for the browser tests (Debian's package; needs root or sudo)
browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) && /usr/bin/chromium --version; \
	else echo "chromium missing: run 'sudo apt-get install chromium' (browser tests are skipped without it)"; fi

## demo: set up, then run the main job (LEBM on the shipped MNIST, CPU scale) into runs/demo
demo: setup
	OMP_NUM_THREADS=$(DEMO_THREADS) $(BIN)/lebm run train_lebm --out runs/demo --overwrite

## test: set up, then the quick tier: the notebooks' tests without `#| slow` cells and pytest without `slow` tests
##       (one real `lebm run` end to end and one kill/resume stay in it); two workers, one thread each
test: setup
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/pytest tests -m "not slow" -n 2 --dist loadfile -ra

## test-all: set up, then everything: every `#| slow` cell, every run notebook end to end, the browser tests (what CI runs)
test-all: setup browser
	$(BIN)/nbdev_test --n_workers 2 --flags slow --timing
	$(BIN)/pytest tests -n 2 --dist loadfile -ra

## export / check-export: notebooks -> latent_ebm_nb/, and fail if that changes any tracked file
export: setup
	$(BIN)/nbdev_export
check-export: export
	@git diff --exit-code --stat -- latent_ebm_nb || (echo "latent_ebm_nb/ is out of sync with nbs/: run nbdev_export and commit" && exit 1)
	@test -z "$$(git status --porcelain --untracked-files=all -- latent_ebm_nb)" || (git status --short -- latent_ebm_nb; echo "untracked exported files: commit them" && exit 1)

clean-nbs: setup
	$(BIN)/nbdev_clean

## docs: build the site into _site/ (Quarto if installed, else the offline renderer); readme: README.md from nbs/index.ipynb
docs: setup
	$(BIN)/lebm docs
readme: setup
	$(BIN)/lebm readme

## lab: JupyterLab on the notebooks
lab: setup
	$(BIN)/jupyter-lab nbs

clean:
	rm -rf _proc _site _docs .pytest_cache
