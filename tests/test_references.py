"""The independent references (studies.references, tools/build_references.py): the tool's defaults rebuild the
shipped references (on the first problems of each set, by the tool's own code path), the manifest records the
settings the code uses, a changed file is refused, and each reference is the stiffer of its two runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from studies.references import (
    CONTINUED,
    INDEPENDENT_LAST,
    INDEPENDENT_PENALTIES,
    REFERENCE_SETS,
    REFERENCES_FILE,
    REFERENCES_MANIFEST,
    dataset_noise,
    load_references,
    target_compliance,
)
from tools import build_references
from utils.integrity import DataIntegrityError
from utils.paths import DATA_DIR


def test_the_tools_defaults_rebuild_the_shipped_references() -> None:
    """The first two problems of every set, rebuilt with the tool's defaults (one process, the same code as
    `make references`), equal the shipped ones; the shipped file matches its manifest's SHA-256 (load_references)."""
    for name, problems in build_references.reference_sets(2).items():
        rebuilt, _ = build_references.build(problems, 1, name)
        shipped = load_references(name)
        np.testing.assert_allclose(rebuilt.density, shipped.density[:2], atol=1e-6)
        np.testing.assert_array_equal(rebuilt.source, shipped.source[:2])
        np.testing.assert_array_equal(rebuilt.iterations_continued, shipped.iterations_continued[:2])
        np.testing.assert_array_equal(rebuilt.iterations_independent, shipped.iterations_independent[:2])
        for field in ("compliance_dataset", "compliance_continued", "compliance_independent"):
            np.testing.assert_allclose(getattr(rebuilt, field), getattr(shipped, field)[:2], rtol=1e-9)


def test_the_manifest_records_the_settings_and_every_set() -> None:
    manifest = json.loads((DATA_DIR / REFERENCES_MANIFEST).read_text())
    assert manifest["continued"] == CONTINUED.as_dict()
    assert manifest["independent"]["penalties"] == list(INDEPENDENT_PENALTIES)
    assert manifest["independent"]["last stage"]["tolerance"] == INDEPENDENT_LAST.tolerance
    sets = build_references.reference_sets()
    assert manifest["counts"] == {name: len(problems) for name, problems in sets.items()}
    assert set(manifest["seconds"]) == set(REFERENCE_SETS)


def test_each_reference_is_the_stiffer_of_its_two_runs_at_the_volume_target() -> None:
    problems = build_references.reference_sets(3)["test"]
    shipped = load_references("test")
    for i in range(3):
        ours = target_compliance(shipped.density[i].astype(float), problems.load_case(i))
        best = min(shipped.compliance_continued[i], shipped.compliance_independent[i])
        assert ours == pytest.approx(best, rel=1e-4)  # the design is stored in float32
    np.testing.assert_allclose(dataset_noise(shipped)[:3],
                               shipped.compliance_dataset[:3] / np.minimum(shipped.compliance_continued[:3],
                                                                          shipped.compliance_independent[:3]) - 1)


def test_changed_or_missing_references_are_refused(tmp_path: Path) -> None:
    for file in (REFERENCES_FILE, REFERENCES_MANIFEST):
        shutil.copy(DATA_DIR / file, tmp_path / file)
    assert len(load_references("ood", tmp_path).source) == 24
    data = bytearray((tmp_path / REFERENCES_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / REFERENCES_FILE).write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match="make references"):
        load_references("ood", tmp_path)
    (tmp_path / REFERENCES_MANIFEST).unlink()
    with pytest.raises(DataIntegrityError, match="make references"):
        load_references("ood", tmp_path)
    with pytest.raises(ValueError, match="no references for 'train'"):
        load_references("train")


def test_the_tool_refuses_to_overwrite_and_writes_a_subset_where_told(tmp_path: Path) -> None:
    assert build_references.main(["--out", str(DATA_DIR)]) == 2  # the shipped file exists: nothing is touched
    assert build_references.main(["--problems", "1", "--workers", "1", "--out", str(tmp_path)]) == 0
    assert [len(load_references(name, tmp_path).source) for name in REFERENCE_SETS] == [1, 1, 1]
    assert not (tmp_path / "references.md").exists()
