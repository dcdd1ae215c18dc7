"""The shipped dataset: verified loading, clear errors on bad files, regeneration reproduces it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tools.build_dataset import draw_problems, solve
from utils.data import (
    DATASET_FILE,
    MANIFEST_FILE,
    DataIntegrityError,
    DesignBatches,
    load_topology_dataset,
    make_loader,
    read_manifest,
)
from utils.paths import DATA_DIR
from utils.topopt import compliance


@pytest.fixture(scope="module")
def dataset():
    return load_topology_dataset()


def test_manifest_describes_the_shipped_file(dataset) -> None:
    manifest = read_manifest()
    assert manifest["count"] == len(dataset) >= 1000
    assert sum(manifest["split_counts"].values()) == len(dataset)
    assert (DATA_DIR / DATASET_FILE).stat().st_size < 20e6
    assert dataset.density.shape[1:] == (32, 64)
    assert dataset.density.min() >= 0 and dataset.density.max() <= 1


def test_splits_are_disjoint_and_fixed(dataset) -> None:
    sizes = {name: len(dataset.subset(name)) for name in ("train", "validation", "test")}
    assert sizes == read_manifest()["split_counts"]
    with pytest.raises(ValueError, match="unknown split"):
        dataset.subset("holdout")


def test_stored_problem_rebuilds_the_stored_compliance(dataset) -> None:
    for index in (0, 7):
        case = dataset.load_case(index)
        np.testing.assert_allclose(case.volfrac, dataset.volfrac[index])
        np.testing.assert_allclose(compliance(dataset.density[index], case), dataset.compliance[index], rtol=1e-4)
        np.testing.assert_allclose(dataset.density[index].mean(), case.volfrac, atol=2e-3)


def test_regenerating_samples_reproduces_the_shipped_ones(dataset) -> None:
    manifest = read_manifest()
    cases = draw_problems(manifest["count"], manifest["seed"])
    for index in (0, 1, 2):
        assert cases[index].to_dict() == dataset.load_case(index).to_dict()
        regenerated = solve(cases[index])
        np.testing.assert_allclose(regenerated["density"], dataset.density[index], atol=1e-4)
        assert regenerated["iterations"] == dataset.iterations[index]


def copy_dataset(tmp_path: Path) -> Path:
    for name in (DATASET_FILE, MANIFEST_FILE):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    return tmp_path


def test_missing_file_names_the_regeneration_command(tmp_path: Path) -> None:
    copy_dataset(tmp_path)
    (tmp_path / DATASET_FILE).unlink()
    with pytest.raises(DataIntegrityError, match="make data"):
        load_topology_dataset(tmp_path)


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataIntegrityError, match="manifest .* is missing"):
        load_topology_dataset(tmp_path)


def test_truncated_file_is_detected(tmp_path: Path) -> None:
    copy_dataset(tmp_path)
    data = (tmp_path / DATASET_FILE).read_bytes()
    (tmp_path / DATASET_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataIntegrityError, match="does not match its manifest"):
        load_topology_dataset(tmp_path)


def test_tampered_file_is_detected_and_left_untouched(tmp_path: Path) -> None:
    copy_dataset(tmp_path)
    data = bytearray((tmp_path / DATASET_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / DATASET_FILE).write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match="git checkout -- data/"):
        load_topology_dataset(tmp_path)
    assert (tmp_path / DATASET_FILE).read_bytes() == bytes(data), "nothing is overwritten"


def test_unreadable_archive_with_matching_checksum_is_an_error(tmp_path: Path) -> None:
    copy_dataset(tmp_path)
    (tmp_path / DATASET_FILE).write_bytes(b"not a zip file")
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    from utils.integrity import file_sha256
    manifest["sha256"] = file_sha256(tmp_path / DATASET_FILE)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(DataIntegrityError, match="cannot be read"):
        load_topology_dataset(tmp_path)


def test_loader_batches_and_mirrors(dataset) -> None:
    loader = make_loader(dataset, "validation", batch_size=16)
    batch = next(iter(loader))
    assert batch.shape == (16, 1, 32, 64) and batch.dtype == torch.float32
    assert len(loader) == 10 and sum(len(b) for b in loader) == 150
    plain = next(iter(make_loader(dataset, "validation", batch_size=150, shuffle=False)))
    mirrored = next(iter(make_loader(dataset, "validation", batch_size=150, shuffle=False, mirror=True)))
    flipped = torch.tensor([torch.equal(m, torch.flip(p, dims=(1,))) for p, m in zip(plain, mirrored, strict=True)])
    kept = torch.tensor([torch.equal(m, p) for p, m in zip(plain, mirrored, strict=True)])
    assert torch.all(flipped | kept)
    assert 40 < int(flipped.sum()) < 110  # Binomial(150, ½): mean 75, standard deviation 6.1
    first = next(iter(make_loader(dataset, "train", batch_size=8, seed=3)))
    assert torch.equal(first, next(iter(make_loader(dataset, "train", batch_size=8, seed=3))))


def test_regeneration_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools.build_dataset import main
    copy_dataset(tmp_path)
    before = (tmp_path / DATASET_FILE).read_bytes()
    assert main(["--out", str(tmp_path), "--count", "2"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / DATASET_FILE).read_bytes() == before


def test_batches_follow_a_dataloaders_order_epoch_after_epoch(dataset) -> None:
    """The shuffled order equals torch's DataLoader's for the same seed, so trainings reproduce."""
    train = torch.as_tensor(dataset.subset("train").density, dtype=torch.float32).unsqueeze(1)
    reference = DataLoader(TensorDataset(train), batch_size=64, shuffle=True,
                           generator=torch.Generator().manual_seed(5))
    batches = make_loader(dataset, "train", batch_size=64, seed=5)
    for _ in range(3):
        ours, theirs = list(batches), [b for (b,) in reference]
        assert len(ours) == len(theirs) == 19
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_the_permutation_order_is_one_randperm_per_epoch_and_differs_from_a_dataloaders(dataset) -> None:
    """The shipped CVAE's order (its old batcher's): one torch.randperm per epoch from the seeded generator, nothing
    else drawn, conditions drawn in the same order as their designs."""
    train = dataset.subset("train")
    conditions = torch.arange(len(train), dtype=torch.float32)[:, None]
    batches = DesignBatches(train.density, 64, True, seed=5, conditions=conditions, order="permutation")
    dataloader_order = make_loader(dataset, "train", batch_size=64, seed=5)
    generator = torch.Generator().manual_seed(5)
    images = torch.as_tensor(train.density, dtype=torch.float32).unsqueeze(1)
    for _ in range(3):
        expected = torch.randperm(len(train), generator=generator)
        ours = list(batches)
        assert torch.equal(torch.cat([c for _, c in ours])[:, 0].long(), expected)
        assert torch.equal(torch.cat([x for x, _ in ours]), images[expected])
        assert not torch.equal(torch.cat(list(dataloader_order)), images[expected])
    with pytest.raises(ValueError, match="batch order"):
        DesignBatches(train.density, 64, True, order="sorted")


def test_the_shared_settings_are_those_of_the_shipped_data_and_checkpoint() -> None:
    """utils.settings is the one place for the grid, the solver, the ranges and the latent size: the shipped
    dataset's manifest and the checkpoint's record must say the same (else regenerate: make data, make checkpoint)."""
    import json

    from utils.data import read_manifest
    from utils.settings import CHECKPOINT_PATH, DATASET_SOLVER, LATENT_DIM, NELX, NELY, PARAMETER_RANGES
    manifest = read_manifest()
    assert (manifest["domain"]["nelx"], manifest["domain"]["nely"]) == (NELX, NELY)
    assert manifest["solver"] == DATASET_SOLVER.as_dict()
    assert manifest["parameter_ranges"] == {name: list(bounds) for name, bounds in PARAMETER_RANGES.items()}
    record = json.loads(CHECKPOINT_PATH.with_name(f"{CHECKPOINT_PATH.name}.sha256.json").read_text())
    assert record["settings"]["latent_dim"] == LATENT_DIM


def test_out_of_distribution_problems_regenerate_identically(tmp_path: Path) -> None:
    """`make data` also writes lesson 8's 24 out-of-distribution problems: same problems, same solver, same
    designs and the same checksummed file as the one shipped."""
    from tools.build_dataset import out_of_distribution_problems
    from utils.settings import DATASET_SOLVER, OOD_MANIFEST_FILE
    shipped = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)
    cases = out_of_distribution_problems()
    assert [c.to_dict() for c in cases] == [json.loads(p) for p in shipped.problems]
    assert read_manifest(manifest_file=OOD_MANIFEST_FILE)["solver"] == DATASET_SOLVER.as_dict()
    for index in (0, 13):
        np.testing.assert_allclose(solve(cases[index])["density"], shipped.density[index], atol=1e-5)
