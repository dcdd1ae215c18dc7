"""The instructor scripts run end to end: checkpoint training (one epoch) and checkpoint evaluation."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tools import evaluate_checkpoint, train_checkpoint
from utils.data import load_topology_dataset, make_loader
from utils.training import kl_weight
from utils.vae import evaluate_loss, load_checkpoint


def test_train_checkpoint_writes_a_loadable_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "not" / "yet" / "vae.pt"  # the folder is created, before the training
    assert train_checkpoint.main(["--epochs", "1", "--out", str(out)]) == 0
    model, record = load_checkpoint(out)
    assert record["settings"]["epochs"] == 1 and model.latent_dim == train_checkpoint.SETTINGS["latent_dim"]
    assert json.loads(Path(f"{out}.sha256.json").read_text())["sha256"] == record["sha256"]
    # The recorded validation figures are the saved model's: its KL on the validation split is deterministic
    # (the encoder's means and variances), and the loss is reconstruction + (the epoch's KL weight) × KL.
    validation = record["final_validation"]
    weight = kl_weight(0, record["settings"]["beta"], record["settings"]["warmup_epochs"])
    assert validation["loss"] == pytest.approx(validation["reconstruction"] + weight * validation["kl"], rel=1e-5)
    loader = make_loader(load_topology_dataset(), "validation", 256)
    assert evaluate_loss(model, loader, weight)["kl"] == pytest.approx(validation["kl"], rel=1e-4)
    assert f"{validation['loss']:.1f} nats" in capsys.readouterr().out


def test_evaluate_checkpoint_prints_every_metric(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    markdown = tmp_path / "vae.md"
    assert evaluate_checkpoint.main(["--markdown", str(markdown)]) == 0
    printed = capsys.readouterr().out
    for column in ("IoU mean", "|CE| median", "VFE median", "load disrespect share", "floating material share",
                   "VFE vs target median"):
        assert column in printed
    assert "prior samples + 10 SIMP its" in printed
    # The results page's section: headed by its command, one table row per report, every column filled.
    written = markdown.read_text(encoding="utf-8")
    assert "`make evaluate`" in written.splitlines()[2]
    rows = [line for line in written.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["|", "| test reconstructions", "|", "| prior samples, as decoded",
                                                      "| prior samples + 10 warm-started SIMP iterations"]
    header, reconstructions, samples_header, *samples = (row.count(" | ") for row in rows)
    assert reconstructions == header == 5 and samples == [samples_header] * 2 and "nan" not in written


def test_train_cvae_writes_the_three_loadable_models(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools import train_cvae
    from utils.cvae import load_models
    out = tmp_path / "new" / "cvae.pt"  # the folder is created, before the training
    assert train_cvae.main(["--epochs", "1", "--out", str(out)]) == 0
    models, record = load_models(out)
    assert set(models) == {"cvae", "naive", "baseline"} and record["settings"]["epochs"] == 1
    assert record["settings"]["targets"] == "grey"
    assert models["baseline"].latent_dim == 0 and models["cvae"].prior is not None and models["naive"].prior is None
    printed = capsys.readouterr().out
    for name, entry in record["models"].items():
        assert f"{name}: validation −ELBO {entry['final_validation']['loss']:.1f} nats" in printed
        assert entry["final_validation"]["kl"] >= 0 and (entry["final_validation"]["kl"] == 0) == (name == "baseline")


def test_train_cvae_can_train_on_the_thresholded_designs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import train_cvae
    from utils.cvae import load_models
    from utils.data import DesignBatches
    targets = []

    def recording_batches(density, *args, **kwargs) -> DesignBatches:
        targets.append(np.asarray(density))
        return DesignBatches(density, *args, **kwargs)

    monkeypatch.setattr(train_cvae, "DesignBatches", recording_batches)
    out = tmp_path / "thresholded.pt"
    assert train_cvae.main(["--epochs", "1", "--out", str(out), "--thresholded-targets"]) == 0
    assert load_models(out)[1]["settings"]["targets"] == "thresholded"
    assert len(targets) == 6 and all(set(np.unique(t)) == {0.0, 1.0} for t in targets)


def test_evaluate_cvae_seed_study_writes_a_range_per_k(tmp_path: Path) -> None:
    from studies.cvae_study import TABLE_BUDGETS
    from tools import evaluate_cvae
    out = tmp_path / "cvae_seeds.md"
    assert evaluate_cvae.main(["--problems", "4", "--seeds", "0", "1", "--seed-out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and " – " in line]
    assert [int(row.split(" | ")[0].strip("| ")) for row in rows] == list(TABLE_BUDGETS)
    for row in rows:
        for cell in row.strip(" |").split(" | ")[1:]:
            low, high = (float(v.rstrip("%")) for v in cell.split(" – "))
            assert low <= high


def test_evaluate_cvae_prints_every_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools import evaluate_cvae
    out = tmp_path / "cvae.md"
    assert evaluate_cvae.main(["--problems", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for text in ("validation problems (6)", "test problems (6)", "out-of-distribution problems",
                 "best of 16 + 10 SIMP its", "smoothed", "thresholded at 0.5", "p90 CE", "CE > 10 %", "median ΔV",
                 "TopoDiff's, adapted", "E_min = 1e-3", "equal compute", "b = 50", "ms per design", "shortcut test",
                 "break", "solves to come within 1 %"):
        assert text in printed
    markdown = out.read_text()
    assert markdown.startswith("# ") and "make evaluate-cvae" in markdown and "| --- |" in markdown


def test_a_training_whose_output_cannot_be_written_stops_before_it_trains(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import train_cvae
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    trained = []
    monkeypatch.setattr(train_cvae, "train_conditional", lambda *args, **kwargs: trained.append(args))
    with pytest.raises(OSError, match="choose another --out"):
        train_cvae.main(["--epochs", "1", "--out", str(blocker / "cvae.pt")])
    assert not trained


def test_train_cvae_other_seeds_trains_each_missing_or_damaged_seed_and_keeps_an_intact_one(tmp_path: Path,
                                                                                          monkeypatch) -> None:
    """`make training-seeds`' first step: every seed of CVAE_TRAINING_SEEDS but the shipped one, each into its own
    file; a file that matches its record is kept, a damaged one (or one without a record) is trained again."""
    from tools import train_cvae
    from utils.settings import CVAE_TRAINING, CVAE_TRAINING_SEEDS

    trained: list[int] = []
    monkeypatch.setattr(train_cvae, "cvae_seed_checkpoint_path", lambda seed: tmp_path / f"seed{seed}.pt")
    monkeypatch.setattr(train_cvae, "train_one", lambda args: trained.append(args.seed) or 0)
    others = [seed for seed in CVAE_TRAINING_SEEDS if seed != CVAE_TRAINING.seed]
    assert train_cvae.main(["--other-seeds"]) == 0 and trained == others
    kept, damaged = others[0], others[1]
    for seed in (kept, damaged):
        (tmp_path / f"seed{seed}.pt").write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    (tmp_path / f"seed{kept}.pt.sha256.json").write_text(json.dumps({"file": f"seed{kept}.pt", "sha256": digest}))
    (tmp_path / f"seed{damaged}.pt.sha256.json").write_text("{not json")
    trained.clear()
    assert train_cvae.main(["--other-seeds"]) == 0 and trained == [s for s in others if s != kept]
