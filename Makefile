# One entry point for students, instructors and CI. Every target sets up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# PyTorch's OpenMP threads busy-wait before sleeping; on a shared machine they must not burn the other processes'
# cores, so the spin count is small (benchmarks/shared_machine.py measures what it costs and saves). It must be in
# the environment before torch is imported: here, for every kernel and tool.
export GOMP_SPINCOUNT ?= 1000
# JupyterLab refuses to run as root unless told to (containers, CI machines).
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test ui-test hub-test class-table notebooks notebooks-force check-sync data references checkpoint cvae-checkpoint benchmark evaluate \
	evaluate-cvae evaluate-latent evaluate-priors evaluate-published priors training-seeds grade release site site-test browser clean-venv

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
## self-checks' mistake catalogue, every solution notebook executed top to bottom). Each execution is stored in the
## site's cache (build/site-cache/), so a `make site` after it executes no lesson again.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest tests --ignore=tests/ui --ignore=tests/site --ignore=tests/hub --durations=20

## Everyone: the course in a real browser (JupyterLab in Debian's chromium, driven by Playwright): the lab loads,
## lesson 1 stops at exercise 1.1, the explorers react to their sliders, no console errors. Installs chromium
## with apt-get when it is missing (as root, as on CI; elsewhere install the chromium package yourself).
ui-test: browser
	$(PY) -m pytest tests/ui -p no:cacheprovider

## Instructor: the course on a real JupyterHub on the loopback (tests/hub): jupyterhub and nbgitpuller
## (requirements-hub.txt) and npm's configurable-http-proxy (CHP_VERSION, into build/hub/), a dummy authenticator
## and a local process spawner; two students log in through Chromium, get the student release by the nbgitpuller
## link, one runs lesson 1 to exercise 1.1 and hands it in; the grader grades the hand-in folder. Screenshot in
## build/hub-screenshots/.
CHP_VERSION ?= 5.3.0
hub-test: browser
	$(PY) -m pip install -q -r requirements-hub.txt
	@test -x build/hub/node_modules/.bin/configurable-http-proxy || \
		npm install --no-audit --no-fund --prefix build/hub configurable-http-proxy@$(CHP_VERSION)
	$(PY) -m pytest tests/hub -p no:cacheprovider

## Everyone: the course website in site/ (open site/index.html), built with Sphinx from docs/ and the lessons,
## every lesson executed (cached in build/site-cache/: an unchanged rebuild executes nothing) and the student release
## packed for its download link. SOLUTIONS=0 leaves the exercises' solutions out. Nothing is fetched but the pinned
## packages of requirements-site.txt.
SOLUTIONS ?= 1
site: $(STAMP)
	$(PY) -m pip install -q -r requirements-site.txt
	$(PY) -m tools.release --out dist
	$(PY) -m tools.build_site $(if $(filter 0,$(SOLUTIONS)),--no-solutions,)

## Everyone: build the site, then check it in Debian's chromium with Playwright (as ui-test): every page answers
## without console error or outside request, images load, mathematics renders, internal links and anchors resolve,
## search finds lesson 3 for "ELBO", solution toggles open, lesson pages fit a 375 px phone, axe-core finds no WCAG 2
## A/AA violation on any page; screenshots of the
## landing page and lesson 7 in build/site-screenshots/.
site-test: site browser
	$(PY) -m pytest tests/site -p no:cacheprovider

## The browser tests' browser and driver: Debian's chromium (installed with apt-get when missing, as root, as on CI;
## elsewhere install the chromium package yourself), Playwright (requirements-ui.txt) and axe-core (npm, pinned in
## tests/site/package.json and its lock file).
browser: $(STAMP)
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "the browser tests need Debian's chromium: sudo apt-get install chromium"; exit 2; }
	$(PY) -m pip install -q -r requirements-ui.txt
	@command -v npm >/dev/null || { echo "the site's accessibility audit needs npm (Debian: sudo apt-get install npm)"; exit 2; }
	npm ci --prefix tests/site --no-audit --no-fund --ignore-scripts --silent

## Instructor: regenerate solutions/ and notebooks/ from lessons/ (refuses to overwrite hand edits).
notebooks: $(STAMP)
	$(PY) -m tools.build_notebooks

notebooks-force: $(STAMP)
	$(PY) -m tools.build_notebooks --force

## Instructor: regenerate and fail if anything changed (CI checks the same in memory: tests/test_lessons.py).
check-sync: notebooks
	git diff --exit-code -- notebooks solutions

## Instructor: regenerate the topology dataset in data/ (parallel, with a progress bar), then lesson 8's 24
## out-of-distribution problems. Both refuse to overwrite; FORCE=1 overwrites.
data: $(STAMP)
	$(PY) -m tools.build_dataset $(if $(FORCE),--force,)
	$(PY) -m tools.build_dataset --out-of-distribution $(if $(FORCE),--force,)

## Instructor: lessons 8 and 9's independent references (SIMP continued from each dataset design to a tight tolerance,
## and SIMP from a uniform start with a density filter and a continuation of the penalty; the stiffer at the volume
## target) for the validation, test and out-of-distribution problems, with a progress bar; writes
## data/references_64x32.npz, its manifest and docs/results/references.md. Refuses to overwrite; FORCE=1 overwrites.
references: $(STAMP)
	$(PY) -m tools.build_references $(if $(FORCE),--force,)

## Instructor: retrain the shipped VAE checkpoint (uses a GPU when present).
checkpoint: $(STAMP)
	$(PY) -m tools.train_checkpoint

## Instructor: retrain lesson 8's shipped models (the CVAE, the naive CVAE, the baseline; a GPU when present).
cvae-checkpoint: $(STAMP)
	$(PY) -m tools.train_cvae

## Instructor: the other training seeds' CVAE and baseline (data/cvae_topology_seedN.pt for each seed of
## utils.settings.CVAE_TRAINING_SEEDS but the shipped one; a file that matches its record is kept; about 20 min per
## seed on 2 cores), then lessons 8 and 9's figures over the training seeds (docs/results/cvae_training_seeds.md on
## the 150 test problems; latent_training_seeds.md on the first 50 test and all 24 out-of-distribution problems, to
## 50 solves: about 15 min per seed on 2 cores; it reuses make evaluate-latent's cache for the shipped seed).
training-seeds: $(STAMP)
	$(PY) -m tools.train_cvae --other-seeds
	$(PY) -m tools.evaluate_cvae --training-seeds
	$(PY) -m tools.evaluate_latent --training-seeds --problems 50

## Instructor: refit lesson 10's priors (a VampPrior and a latent diffusion prior per seed) to the shipped VAE's
## codes: data/priors_topology.pt and its record (2–3 minutes on 2 CPU cores; a rerun gives the same bytes); and
## section 4's conditional diffusion priors on lesson 8's CVAE: data/priors_conditional.pt and its record (about
## 75 s more, the same bytes again too; ONLY=conditional or ONLY=unconditional fits one of the two).
priors: $(STAMP)
	$(PY) -m tools.train_priors $(if $(ONLY),--only $(ONLY),)

## Instructor: pack what students need (exercise notebooks, utils, data, requirements, licences, a student README;
## LESSONS=1-3 or LESSONS=1,2,5 for a release by week)
## into dist/vae-course-student/ and dist/vae-course-student.zip; refuses stale notebooks or damaged data.
release: $(STAMP)
	$(PY) -m tools.release --out dist $(if $(LESSONS),--lessons $(LESSONS),)

## Speed and quality figures (printed, never asserted).
benchmark: $(STAMP)
	$(PY) -m benchmarks.solver_speed

evaluate: $(STAMP)
	$(PY) -m tools.evaluate_checkpoint

evaluate-cvae: $(STAMP)
	$(PY) -m tools.evaluate_cvae

## Lesson 9's comparison at equal budgets of finite-element solves (up to 100) on all 150 test problems and the 24
## out-of-distribution ones, every method beside its control, each hyperparameter chosen on 24 validation problems
## first; writes docs/results/latent.md (the committed one: about 27 min on 2 shared cores, 6 of them the validation
## sweeps). Each method's result on each chunk is cached in build/evaluate_latent (delete it to recompute); LARGEST=50
## stops every method at 50 solves (half the time). `python -m tools.evaluate_latent --seeds 0 1 2` reruns the methods that draw once per
## seed (docs/results/latent_seeds.md).
evaluate-latent: $(STAMP)
	$(PY) -m tools.evaluate_latent $(if $(LARGEST),--largest $(LARGEST),)

## Lesson 10's section 4 on all 150 validation problems: the conditional diffusion priors against the CVAE's learned
## prior at equal solves, with bootstrap intervals; writes docs/results/priors.md (the test split is not read).
evaluate-priors: $(STAMP)
	$(PY) -m tools.evaluate_priors

## Lesson 9's cited methods reproduced on a subset of the test problems: Hoyer et al.'s neural reparametrisation
## against pixels under the same L-BFGS (first 6 problems, to their 1,000 evaluations) and CMA-ES in the CVAE's latent
## against CMA-ES on coarse pixels, SIMP beside (first 12, to 1,000 solves); writes docs/results/published.md (about
## 12–13 min of computing on 2 shared cores, one chunk at a time). Chunks are cached in build/evaluate_published
## (delete it to recompute).
evaluate-published: $(STAMP)
	$(PY) -m tools.evaluate_published

## Instructor: grade every notebook in SUBMISSIONS (a notebook, or one file or folder per student) with the
## course's own checks, each in a bubblewrap sandbox (docs/grading.md); writes one folder per lesson,
## $(GRADES)/lesson-NN/: gradebook, feedback, written answers, summary, Moodle and Canvas exports. LESSON=N optional. Installs bubblewrap with apt-get when it is missing (as root, as
## on CI); elsewhere install the bubblewrap package yourself, or pass GRADE_FLAGS=--no-sandbox (trusted code only).
SUBMISSIONS ?=
GRADES ?= grades
GRADE_FLAGS ?=
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder [GRADES=grades] [LESSON=N]"; exit 2; }
	@command -v bwrap >/dev/null || case "$(GRADE_FLAGS)" in *--no-sandbox*) ;; *) { test "$$(id -u)" = 0 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
		{ echo "grade needs bubblewrap: sudo apt-get install bubblewrap (docs/grading.md)"; exit 2; } ;; esac
	$(PY) -m tools.grade "$(SUBMISSIONS)" --out "$(GRADES)" $(if $(LESSON),--lesson $(LESSON),) $(GRADE_FLAGS)

## Instructor: merge every lesson's gradebook in $(GRADES) into $(GRADES)/class.csv (one row per student).
class-table: $(STAMP)
	$(PY) -m tools.grade --class-table --out "$(GRADES)"

clean-venv:
	rm -rf $(VENV)
