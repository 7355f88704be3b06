# vaebook: `make book` executes every chapter and builds the HTML book; `make test` runs the tests.
# Both create .venv and install the package on first use (quick when nothing changed).
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
NAME ?=
PARAMS ?=
SCHEDULER ?=
DASK := $(if $(SCHEDULER),--scheduler $(SCHEDULER),)
BIN := $(VENV)/bin
STAMP := $(VENV)/.vaebook-installed
# glibc malloc settings: bench/bench_training.py measured the conv VAE 1.5x faster with them
# and the MLP VAE 0.9x; the conv models dominate the book's run time, so make uses them.
MALLOC_ENV := MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_TOP_PAD_=67108864

.PHONY: install book chapter build publish test bench clean-book help

help:
	@echo "make book [PROFILE=smoke|default|full] [SCHEDULER=tcp://host:8786]   execute every chapter, build _build/html"
	@echo "make chapter NAME=latent_size PARAMS=\"-p epochs 3\"   rerun one chapter, rebuild"
	@echo "make publish [REMOTE=origin]             push _build/html to the gh-pages branch (after make book)"
	@echo "make test                                 run the test suite"
	@echo "make bench                                run the benchmarks in bench/"

# torch is pinned in the same pip call as everything else: unpinned, pip pulls a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e . "torch==2.13.0"
	@touch $(STAMP)

install: $(STAMP)

book: install
	$(MALLOC_ENV) $(BIN)/python -m vaebook.book all --profile $(PROFILE) $(DASK)

chapter: install
	@test -n "$(NAME)" || { echo "usage: make chapter NAME=<chapter> [PARAMS=\"-p key value\"]; chapters:"; $(BIN)/python -m vaebook.book list; exit 2; }
	$(MALLOC_ENV) $(BIN)/python -m vaebook.book execute $(NAME) --profile $(PROFILE) $(PARAMS) $(DASK) --build

build: install
	$(BIN)/python -m vaebook.book build

REMOTE ?= origin
publish: install
	$(BIN)/python -m vaebook.book publish --remote $(REMOTE)

test: install
	$(MALLOC_ENV) $(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_gk.py
	$(BIN)/python bench/bench_precision.py
	$(BIN)/python bench/bench_compile.py
	$(MALLOC_ENV) $(BIN)/python bench/bench_grid.py

clean-book:
	rm -rf _build book/generated
