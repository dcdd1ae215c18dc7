# One entry point for students, instructors and CI. Every target sets up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# PyTorch's OpenMP threads spin 300,000 times before sleeping; on a shared machine that burns the other
# processes' cores (two concurrent trainings: 4x slower than one after the other). 1000 spins cost one run
# nothing measurable. It must be in the environment before torch is imported: here, for every kernel and tool.
export GOMP_SPINCOUNT ?= 1000
# JupyterLab refuses to run as root unless told to (containers, CI machines).
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test ui-test notebooks notebooks-force check-sync data checkpoint cvae-checkpoint benchmark evaluate \
	evaluate-cvae grade release site site-test clean-venv

setup: $(STAMP)

# The stamp records a finished install; a fresh clone has none, so the first target installs everything.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

## Student: set up, then open the course in JupyterLab (lesson 1 first; solutions/ sits beside notebooks/).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" notebooks/01_latent_variable_models.ipynb

## Everyone: set up, then lint (ruff, settings in pyproject.toml) and run every test (unit tests, sync, the
## self-checks' mistake catalogue, nbval on all solutions).
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest tests solutions --ignore=tests/ui --ignore=tests/site --nbval-lax --nbval-current-env --nbval-cell-timeout=900 --durations=20

## Everyone: the course in a real browser (JupyterLab in Debian's chromium, driven by Playwright): the lab loads,
## lesson 1 stops at exercise 1.1, the explorers react to their sliders, no console errors. Installs chromium
## with apt-get when it is missing (as root, as on CI; elsewhere install the chromium package yourself).
ui-test: $(STAMP)
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "ui-test needs Debian's chromium: sudo apt-get install chromium"; exit 2; }
	$(PY) -m pip install -q -r requirements-ui.txt
	$(PY) -m pytest tests/ui -p no:cacheprovider

## Everyone: the course website in site/ (open site/index.html), built with Sphinx from docs/ and the lessons,
## every lesson executed (cached in build/site-cache/: an unchanged rebuild executes nothing) and the student release
## packed for its download link. SOLUTIONS=0 leaves the exercises' solutions out. Nothing is fetched but the pinned
## packages of requirements-site.txt.
SOLUTIONS ?= 1
site: $(STAMP)
	$(PY) -m pip install -q -r requirements-site.txt
	$(PY) tools/release.py --out dist
	$(PY) tools/build_site.py $(if $(filter 0,$(SOLUTIONS)),--no-solutions,)

## Everyone: build the site, then check it in Debian's chromium with Playwright (as ui-test): every page answers
## without console error or outside request, images load, mathematics renders, internal links and anchors resolve,
## search finds lesson 3 for "ELBO", solution toggles open, lesson pages fit a 375 px phone; screenshots of the
## landing page and lesson 7 in build/site-screenshots/.
site-test: site
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "site-test needs Debian's chromium: sudo apt-get install chromium"; exit 2; }
	$(PY) -m pip install -q -r requirements-ui.txt
	$(PY) -m pytest tests/site -p no:cacheprovider

## Instructor: regenerate solutions/ and notebooks/ from lessons/ (refuses to overwrite hand edits).
notebooks: $(STAMP)
	$(PY) tools/build_notebooks.py

notebooks-force: $(STAMP)
	$(PY) tools/build_notebooks.py --force

## Instructor: regenerate and fail if anything changed (CI checks the same in memory: tests/test_lessons.py).
check-sync: notebooks
	git diff --exit-code -- notebooks solutions

## Instructor: regenerate the topology dataset in data/ (parallel, with a progress bar), then lesson 8's 24
## out-of-distribution problems. Both refuse to overwrite; FORCE=1 overwrites.
data: $(STAMP)
	$(PY) tools/build_dataset.py $(if $(FORCE),--force,)
	$(PY) tools/build_dataset.py --out-of-distribution $(if $(FORCE),--force,)

## Instructor: retrain the shipped VAE checkpoint (uses a GPU when present).
checkpoint: $(STAMP)
	$(PY) tools/train_checkpoint.py

## Instructor: retrain lesson 8's shipped models (the CVAE, the naive CVAE, the baseline; a GPU when present).
cvae-checkpoint: $(STAMP)
	$(PY) tools/train_cvae.py

## Instructor: pack what students need (exercise notebooks, utils, data, requirements, a student README)
## into dist/vae-course-student/ and dist/vae-course-student.zip; refuses stale notebooks or damaged data.
release: $(STAMP)
	$(PY) tools/release.py --out dist

## Speed and quality figures (printed, never asserted).
benchmark: $(STAMP)
	$(PY) benchmarks/solver_speed.py

evaluate: $(STAMP)
	$(PY) tools/evaluate_checkpoint.py

evaluate-cvae: $(STAMP)
	$(PY) tools/evaluate_cvae.py

## Instructor: grade every notebook in SUBMISSIONS (a notebook, or one file or folder per student) with the
## course's own checks; writes $(GRADES)/gradebook.csv and one feedback file per student. LESSON=N optional.
SUBMISSIONS ?=
GRADES ?= grades
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder [GRADES=grades] [LESSON=N]"; exit 2; }
	$(PY) tools/grade.py "$(SUBMISSIONS)" --out "$(GRADES)" $(if $(LESSON),--lesson $(LESSON),)

clean-venv:
	rm -rf $(VENV)
