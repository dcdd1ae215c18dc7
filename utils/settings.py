"""Settings shared by the lessons, the tools and the checks: the dataset's grid, parameter ranges and solver,
the VAE's latent size, and the shipped checkpoint's file. Each lives here once; everything else imports it.

Changing the grid or the solver settings changes the dataset: regenerate it with ``make data`` (and the
checkpoint with ``make checkpoint``), then review the figures the lessons assert.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from utils.paths import DATA_DIR

FilterKind = Literal["sensitivity", "density"]
# How utils.data.DesignBatches shuffles: as torch's DataLoader does, or one permutation per epoch.
BatchOrder = Literal["dataloader", "permutation"]
# How training holds its images and convolution weights: PyTorch's default (NCHW) or channels-last (NHWC).
MemoryLayout = Literal["contiguous", "channels last"]
# Lessons train in channels-last on a CPU, where benchmarks/training_speed.py measures an epoch faster; on a GPU in
# the default layout (not measured there). utils.device.preferred_layout applies the rule.
CPU_TRAINING_LAYOUT: MemoryLayout = "channels last"


@dataclass(frozen=True)
class SolverSettings:
    """The SIMP settings every design of the dataset was optimised with (lesson 6)."""

    penal: float = 3.0
    rmin: float = 2.0
    filter: FilterKind = "sensitivity"
    max_iterations: int = 100
    tolerance: float = 0.01

    def with_overrides(self, **overrides: float | int | str) -> SolverSettings:
        """A copy with some fields replaced; an unknown field name raises ``TypeError`` naming it."""
        unknown = sorted(set(overrides) - set(asdict(self)))
        if unknown:
            raise TypeError(f"unknown solver setting(s) {unknown}; the settings are {sorted(asdict(self))}")
        return replace(self, **overrides)

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingPreset:
    """How one shipped model is trained (the record beside its file holds the same values; a test compares)."""

    width: int
    epochs: int
    warmup_epochs: int
    batch_size: int = 64
    lr: float = 2e-3
    beta: float = 1.0
    seed: int = 0
    # The shuffling and the memory layout the shipped file was trained with: part of what retrains it bit for bit
    # (another layout computes the same convolutions in another order, so the weights differ in their last bits).
    batch_order: BatchOrder = "dataloader"
    layout: MemoryLayout = "contiguous"

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


# The dataset: a NELX × NELY cantilever (left edge clamped), a unit point load on the right edge.
NELX, NELY = 64, 32
# Three stride-2 convolutions take the grid to the models' coarsest feature map, and back.
DOWNSAMPLING = 8
FEATURE_GRID = (NELY // DOWNSAMPLING, NELX // DOWNSAMPLING)
DATASET_SEED = 2026
DATASET_COUNT = 1500
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
DATASET_SOLVER = SolverSettings()
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "volfrac": (0.30, 0.50), "load_y": (0.0, float(NELY)), "angle_deg": (-150.0, -30.0)}
DATASET_FILE = f"topology_{NELX}x{NELY}.npz"
MANIFEST_FILE = f"topology_{NELX}x{NELY}.manifest.json"
# Lesson 8's problems outside the training ranges, solved by the same SIMP settings.
OOD_DATASET_FILE = f"topology_{NELX}x{NELY}_ood.npz"
OOD_MANIFEST_FILE = f"topology_{NELX}x{NELY}_ood.manifest.json"
# The out-of-distribution problems are fixed, not drawn, and all in the test split: this seed draws nothing.
OOD_DATASET_SEED = 0

# The VAE of lesson 7 and of the shipped checkpoint.
LATENT_DIM = 16
VAE_TRAINING = TrainingPreset(width=32, epochs=600, warmup_epochs=40)
CHECKPOINT_FILE = "vae_topology.pt"
CHECKPOINT_PATH = DATA_DIR / CHECKPOINT_FILE
CHECKPOINT_RECORD_FILE = f"{CHECKPOINT_FILE}.sha256.json"

# Lesson 8's conditional VAE, its naive variant and the deterministic baseline, in one shipped file.
CVAE_CHECKPOINT_FILE = "cvae_topology.pt"
CVAE_CHECKPOINT_PATH = DATA_DIR / CVAE_CHECKPOINT_FILE
CVAE_CHECKPOINT_RECORD_FILE = f"{CVAE_CHECKPOINT_FILE}.sha256.json"
CVAE_TRAINING = TrainingPreset(width=32, epochs=300, warmup_epochs=20, batch_order="permutation")
# The training seeds behind the benchmark's seed ranges: the shipped file is seed CVAE_TRAINING.seed (the lessons'
# models); each other seed's CVAE and baseline, trained with the same settings, live in their own file
# (cvae_seed_checkpoint_path), used by make evaluate-cvae and make evaluate-latent only.
CVAE_TRAINING_SEEDS = (0, 1, 2)
CVAE_SEED_MODELS = ("cvae", "baseline")


def cvae_seed_checkpoint_path(seed: int) -> Path:
    """The file of lesson 8's models trained with ``seed``: the shipped file for the shipped seed."""
    if seed == CVAE_TRAINING.seed:
        return CVAE_CHECKPOINT_PATH
    return DATA_DIR / f"cvae_topology_seed{seed}.pt"

# The void's stiffness in TopoDiff's evaluation (Mazé & Ahmed 2023); the course's own is utils.topopt.E_MIN.
TOPODIFF_E_MIN = 1e-3

# The training budgets of lessons 7 and 8 (epochs, and the width of the notebook's models). Each lesson reads its
# own environment variable through course_environment_int, e.g. VAE_COURSE_LESSON7_EPOCHS for LESSON7_EPOCHS, so a
# short run (the grader's, the UI test's) sets each lesson's budget by name.
COURSE_ENVIRONMENT_PREFIX = "VAE_COURSE_"
LESSON7_EPOCHS = 150
LESSON7_WIDTH = 16
LESSON8_EPOCHS = 60
LESSON8_WIDTH = 16
# The heavy lessons' quick path (lessons 7 and 8): the switch ``QUICK`` in each lesson's first code cell loads the
# shipped models instead of training the notebook's own. VAE_COURSE_QUICK=1 sets its default for a whole server (a
# busy JupyterHub; read by course_environment_flag("QUICK")); unset, a lesson trains. CI executes both paths
# (tests/test_lesson_execution.py).
QUICK_LESSONS = (7, 8)

# Lesson 10's priors, fitted to the shipped VAE's aggregate posterior after training (utils.priors) by
# `make priors` (tools/train_priors.py), one VampPrior and one diffusion prior per seed, in one shipped file: the
# seeds, the VampPrior's pseudo-inputs and Adam steps, the diffusion prior's T (denoising steps), its training
# iterations and its MLP's width; and the draws the lesson judges per prior and seed.
PRIOR_SEEDS = (0, 1, 2)
VAMP_COMPONENTS = 200
VAMP_STEPS = 200
DIFFUSION_STEPS = 100
DIFFUSION_ITERATIONS = 8000
DIFFUSION_HIDDEN = 256
PRIORS_FILE = "priors_topology.pt"
PRIORS_PATH = DATA_DIR / PRIORS_FILE
PRIORS_RECORD_FILE = f"{PRIORS_FILE}.sha256.json"
# Section 4's conditional diffusion priors p(z | c) on lesson 8's CVAE (its codes z ~ q(z | x, c) of the training
# designs, with their conditions), one per seed of PRIOR_SEEDS, the same denoiser and schedule as above with c as an
# input, in a sibling file with its own record.
CONDITIONAL_PRIORS_FILE = "priors_conditional.pt"
CONDITIONAL_PRIORS_PATH = DATA_DIR / CONDITIONAL_PRIORS_FILE
CONDITIONAL_PRIORS_RECORD_FILE = f"{CONDITIONAL_PRIORS_FILE}.sha256.json"
LESSON10_SAMPLES = 200


def course_environment_int(name: str, default: int) -> int:
    """The positive integer in the environment variable ``VAE_COURSE_<name>`` (``name`` such as "LESSON7_EPOCHS"),
    or ``default`` when it is unset or empty. Any other value raises ``ValueError`` naming the variable."""
    variable = f"{COURSE_ENVIRONMENT_PREFIX}{name}"
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{variable}={text!r} is not an integer; set it to a positive integer (default "
                         f"{default}) or unset it") from None
    if value < 1:
        raise ValueError(f"{variable}={value} must be a positive integer (default {default})")
    return value


def course_environment_flag(name: str) -> bool:
    """Whether the environment variable ``VAE_COURSE_<name>`` is ``1`` (``0``, empty or unset: ``False``).
    Any other value raises ``ValueError`` naming the variable."""
    variable = f"{COURSE_ENVIRONMENT_PREFIX}{name}"
    text = os.environ.get(variable, "").strip()
    if text not in ("", "0", "1"):
        raise ValueError(f"{variable}={text!r} must be 1 (on) or 0 (off), or unset (off)")
    return text == "1"
