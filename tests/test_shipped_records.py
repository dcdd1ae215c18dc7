"""Every instructor tool, run with its defaults, rebuilds the file that ships: its settings equal the record
written beside that file (a default that drifted would make `make data`, `make checkpoint` or
`make cvae-checkpoint` or `make priors` silently build something else)."""
from __future__ import annotations

import json

from tools import build_dataset, train_checkpoint, train_cvae, train_priors
from utils.data import SPLIT_NAMES, read_manifest
from utils.paths import DATA_DIR
from utils.settings import (
    CHECKPOINT_RECORD_FILE,
    CONDITIONAL_PRIORS_RECORD_FILE,
    CVAE_CHECKPOINT_RECORD_FILE,
    CVAE_SEED_MODELS,
    CVAE_TRAINING,
    CVAE_TRAINING_SEEDS,
    DATASET_SOLVER,
    LATENT_DIM,
    OOD_MANIFEST_FILE,
    PARAMETER_RANGES,
    PRIORS_RECORD_FILE,
    SPLIT_FRACTIONS,
    cvae_seed_checkpoint_path,
)


def _record(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text())


def test_make_data_defaults_rebuild_the_shipped_dataset() -> None:
    manifest = read_manifest()
    args = build_dataset.parse_arguments([])
    assert (args.seed, args.count, args.out) == (manifest["seed"], manifest["count"], DATA_DIR)
    assert manifest["split_counts"] == {name: round(SPLIT_FRACTIONS[name] * args.count) for name in SPLIT_NAMES}
    assert manifest["solver"] == DATASET_SOLVER.as_dict()
    assert manifest["parameter_ranges"] == {k: list(v) for k, v in PARAMETER_RANGES.items()}
    out_of_distribution = read_manifest(manifest_file=OOD_MANIFEST_FILE)
    assert out_of_distribution["count"] == len(build_dataset.out_of_distribution_problems())
    assert out_of_distribution["solver"] == DATASET_SOLVER.as_dict()


def test_make_checkpoint_defaults_rebuild_the_shipped_vae() -> None:
    args = train_checkpoint.parse_arguments([])
    settings = {**train_checkpoint.SETTINGS, "epochs": args.epochs}
    assert settings == _record(CHECKPOINT_RECORD_FILE)["settings"]
    assert settings["latent_dim"] == LATENT_DIM


def test_make_cvae_checkpoint_defaults_rebuild_the_shipped_models() -> None:
    record = _record(CVAE_CHECKPOINT_RECORD_FILE)
    assert train_cvae.training_settings(train_cvae.parse_arguments([])) == record["settings"]
    assert {name: model["latent_dim"] for name, model in record["models"].items()} == {
        name: shape["latent_dim"] for name, shape in train_cvae.MODELS.items()}
    assert {name: model["prior"] for name, model in record["models"].items()} == {
        name: shape["prior"] for name, shape in train_cvae.MODELS.items()}


def test_each_training_seeds_file_is_what_train_cvae_with_that_seed_builds() -> None:
    """The other training seeds' files (the benchmark's seed ranges): the shipped settings but the seed, the CVAE and
    the baseline only, each at the path the evaluation tools read."""
    shipped = _record(CVAE_CHECKPOINT_RECORD_FILE)["settings"]
    others = [seed for seed in CVAE_TRAINING_SEEDS if seed != CVAE_TRAINING.seed]
    assert CVAE_TRAINING.seed in CVAE_TRAINING_SEEDS and len(CVAE_TRAINING_SEEDS) >= 3
    for seed in others:
        args = train_cvae.parse_arguments(["--seed", str(seed)])
        assert args.out == cvae_seed_checkpoint_path(seed) != cvae_seed_checkpoint_path(CVAE_TRAINING.seed)
        record = _record(f"{args.out.name}.sha256.json")
        assert record["settings"] == train_cvae.training_settings(args) == {**shipped, "seed": seed}
        assert set(record["models"]) == set(train_cvae.models_to_train(seed)) == set(CVAE_SEED_MODELS)


def test_make_priors_defaults_rebuild_the_shipped_priors_for_the_shipped_vae() -> None:
    record = _record(PRIORS_RECORD_FILE)
    assert train_priors.parse_arguments([]).out.name == record["file"]
    assert record["settings"] == train_priors.SETTINGS
    assert record["vae_sha256"] == _record(CHECKPOINT_RECORD_FILE)["sha256"]


def test_make_priors_defaults_rebuild_the_shipped_conditional_priors_for_the_shipped_cvae() -> None:
    record = _record(CONDITIONAL_PRIORS_RECORD_FILE)
    assert train_priors.parse_arguments([]).conditional_out.name == record["file"]
    assert record["settings"] == train_priors.CONDITIONAL_SETTINGS
    assert record["cvae_sha256"] == _record(CVAE_CHECKPOINT_RECORD_FILE)["sha256"]
    assert sorted(map(int, record["fitting_seconds"])) == record["settings"]["seeds"]
    assert len(record["settings"]["seeds"]) >= 3, "the lesson states ranges over at least three seeds"
