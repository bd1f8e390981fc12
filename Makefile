# One entry point. `make run` and `make test` set everything up on a fresh machine (see README).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.exdd-installed
MTD    := ../shared/data/mtd
PYTEST_ARGS ?=
# The main job runs every notebook in its small mode (minutes); RUN_ARGS= (empty) runs the full mode,
# which trains the DDPM and the student-teacher and sweeps synthetic-defect counts (about an hour from an empty cache on MTD).
RUN_ARGS ?= --fast

.PHONY: setup run book test test-main test-numerics test-fast references references-cpu measure-cpu bench bench-anomalib bench-synthesis bench-dual-banks bench-student-teacher bench-archive bench-cost bench-export bench-sequence clean-cache

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,export]"
	@# nbgrader is here for its ClearSolutions (exdd-lab lessons); its grading extensions stay off in students' JupyterLab
	@for e in formgrader validate_assignment assignment_list course_list; do \
	  $(VENV)/bin/jupyter server extension disable --sys-prefix nbgrader.server_extensions.$$e >/dev/null 2>&1 || true; done
	@$(VENV)/bin/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader >/dev/null 2>&1 || true
	touch $(STAMP)

## The main job: execute the notebooks headlessly on the procedural default (and on MTD when present).
run: setup
	$(VENV)/bin/exdd-lab run $(RUN_ARGS)
	@if [ -d "$(MTD)" ]; then $(VENV)/bin/exdd-lab run --data $(MTD) --layout mtd $(RUN_ARGS); \
	else echo "($(MTD) not found: skipped the MTD run)"; fi

## The lessons as an offline HTML book (Sphinx + myst-nb) from the notebooks `make run` executed, newest
## procedural run first (or the test run's runs/executed/); prints the path of its index.html. Executes nothing.
book: setup
	$(PY) -m exdd_lab.lab.book $(BOOK_ARGS)

## All tests: unit tests, notebook regression (papermill + references) and nbval on the committed notebooks,
## with the notebook kernels on the pinned numeric path (AVX2, the machine's threads); then the notebooks
## whose numbers move between CPUs once more on another path (AVX only, 1 thread): one set of references
## must hold on both, as it must on any CPU.
test: test-main test-numerics

test-main: setup
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg --durations=15 $(PYTEST_ARGS)

test-numerics: setup
	EXDD_LAB_ISA=avx EXDD_LAB_THREADS=1 $(PY) -m pytest tests/test_notebooks.py -k "matches_reference and ($$($(PY) -c \
	  "from exdd_lab.lab.references import sensitive_notebooks as s; print(' or '.join(s()) or 'matches_reference')"))" $(PYTEST_ARGS)

## Unit tests (a few minutes, the Ray cluster tests included): skips notebook execution and the browser.
test-fast: setup
	$(PY) -m pytest tests -m "not notebooks and not browser" $(PYTEST_ARGS)

## Deliberately regenerate the notebook reference numbers and committed check outputs after a change meant to
## move them; review the diff. Every machine's earlier measurements are stale then, so they are removed; this CPU
## measures three numeric paths and four training seeds (about 2 hours on 2 cores; see README: notebook regression).
references: setup
	rm -rf tests/reference/measured
	$(MAKE) measure-cpu
	$(PY) -c "from exdd_lab.lab.notebooks import update_references; print('wrote', update_references())"

## A new CPU, nothing meant to move: add this CPU's numeric paths and training seeds to the committed measurements
## and widen the tolerances (the pinned numbers stay); then `make test` on this CPU.
references-cpu: setup measure-cpu
	$(PY) -c "from exdd_lab.lab.notebooks import update_references; print('wrote', update_references())"

measure-cpu: setup
	$(PY) benchmarks/numeric_spread.py --isa avx2 --threads 2
	$(PY) benchmarks/numeric_spread.py --isa avx2 --threads 1
	$(PY) benchmarks/numeric_spread.py --isa avx --threads 1
	for k in 1 2 3 4; do $(PY) benchmarks/numeric_spread.py --isa avx2 --threads 1 --train-seed $$k || exit 1; done

## Benchmarks print numbers (they are not timed tests). The anomalib comparison is separate (long): see benchmarks/README.md.
bench: setup
	$(PY) benchmarks/feature_throughput.py
	$(PY) benchmarks/coreset_and_search.py

bench-anomalib: setup
	$(PY) benchmarks/anomalib_compare.py $(BENCH_ARGS)

## DDPM training/generation speed and defect-likeness (about 15 min on MTD); ExDD vs PatchCore and the count sweep.
bench-synthesis: setup
	$(PY) benchmarks/synthesis.py $(BENCH_ARGS)

bench-dual-banks: setup
	$(PY) benchmarks/dual_banks.py $(BENCH_ARGS)

bench-student-teacher: setup
	$(PY) benchmarks/student_teacher.py $(BENCH_ARGS)

## Archives of 1,000 / 5,000 / 20,000 MTD images (hard links in a scratch folder), both engines, against the scoring floor.
bench-archive: setup
	$(PY) benchmarks/archive_scale.py --nodes $(BENCH_ARGS)

## Exported detectors: fidelity on every data set, speed of torch / ONNX Runtime / OpenVINO, the int8 experiment (about 30 min)
bench-export: setup
	$(PY) benchmarks/export_fidelity.py $(BENCH_ARGS)
	$(PY) benchmarks/export_speed.py
	$(PY) benchmarks/export_int8.py

## Fit / predict / memory against 250 ... 16,000 training images, coreset quality, index fidelity (about 90 min; 16 GB scratch)
bench-cost: setup
	$(PY) benchmarks/cost_growth.py $(BENCH_ARGS)

## The whole notebook sequence against its targets (small <= 10 min, full <= 60 min): BENCH_ARGS="--full --data ../shared/data/mtd --layout mtd"
bench-sequence: setup
	$(PY) benchmarks/notebook_sequence.py $(BENCH_ARGS)

clean-cache:
	rm -rf $${EXDD_LAB_CACHE:-$$HOME/.cache/exdd_lab}
