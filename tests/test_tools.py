"""The instructor scripts run end to end: checkpoint training (one epoch) and checkpoint evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tools import evaluate_checkpoint, train_checkpoint
from utils.vae import load_checkpoint


def test_train_checkpoint_writes_a_loadable_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "vae.pt"
    assert train_checkpoint.main(["--epochs", "1", "--out", str(out)]) == 0
    model, record = load_checkpoint(out)
    assert record["settings"]["epochs"] == 1 and model.latent_dim == train_checkpoint.SETTINGS["latent_dim"]
    assert json.loads(Path(f"{out}.sha256.json").read_text())["sha256"] == record["sha256"]
    assert "validation −ELBO" in capsys.readouterr().out


def test_evaluate_checkpoint_prints_every_metric(capsys: pytest.CaptureFixture) -> None:
    assert evaluate_checkpoint.main() == 0
    printed = capsys.readouterr().out
    for column in ("IoU mean", "|CE| median", "VFE median", "load disrespect share", "floating material share",
                   "VFE vs target median"):
        assert column in printed
    assert "prior samples + 10 SIMP its" in printed


def test_train_cvae_writes_the_three_loadable_models(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools import train_cvae
    from utils.cvae import load_models
    out = tmp_path / "cvae.pt"
    assert train_cvae.main(["--epochs", "1", "--out", str(out)]) == 0
    models, record = load_models(out)
    assert set(models) == {"cvae", "naive", "baseline"} and record["settings"]["epochs"] == 1
    assert record["settings"]["targets"] == "grey"
    assert models["baseline"].latent_dim == 0 and models["cvae"].prior is not None and models["naive"].prior is None
    assert "validation −ELBO" in capsys.readouterr().out


def test_train_cvae_can_train_on_the_thresholded_designs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import train_cvae
    from utils.cvae import ConditionedBatches, load_models
    targets = []

    def recording_batches(density, *args, **kwargs) -> ConditionedBatches:
        targets.append(np.asarray(density))
        return ConditionedBatches(density, *args, **kwargs)

    monkeypatch.setattr(train_cvae, "ConditionedBatches", recording_batches)
    out = tmp_path / "thresholded.pt"
    assert train_cvae.main(["--epochs", "1", "--out", str(out), "--thresholded-targets"]) == 0
    assert load_models(out)[1]["settings"]["targets"] == "thresholded"
    assert len(targets) == 6 and all(set(np.unique(t)) == {0.0, 1.0} for t in targets)


def test_evaluate_cvae_prints_every_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools import evaluate_cvae
    out = tmp_path / "cvae.md"
    assert evaluate_cvae.main(["--problems", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for text in ("validation problems (6)", "test problems (6)", "out-of-distribution problems",
                 "best of 16 + 10 SIMP its", "smoothed", "thresholded at 0.5", "p90 CE", "CE > 10 %", "median ΔV",
                 "TopoDiff's, adapted", "E_min = 1e-3", "equal compute", "k = 32", "ms per design", "shortcut test",
                 "break", "Warm-start"):
        assert text in printed
    markdown = out.read_text()
    assert markdown.startswith("# ") and "make evaluate-cvae" in markdown and "| --- |" in markdown
