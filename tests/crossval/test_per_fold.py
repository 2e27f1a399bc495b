"""neurorvq cv with per-fold overrides ({fold}): each fold fine-tunes (or probes) its own FM checkpoint, the
template is what a resumed run must repeat, and a fold whose file is missing is refused before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neurorvq.crossval.per_fold import check_fold_paths, fold_overrides, has_fold_field
from neurorvq.crossval.runner import run_cv
from neurorvq.errors import ConfigError

from test_runner import armband, settings  # noqa: F401  (armband: the generated recordings fixture)


def test_fold_field_is_replaced_in_every_override():
    overrides = ["--model.init_args.fm=runs/fm_fold{fold}/last.ckpt", "--trainer.max_epochs=2"]
    assert has_fold_field(overrides) and not has_fold_field(overrides[1:])
    assert fold_overrides(overrides, 3) == ["--model.init_args.fm=runs/fm_fold3/last.ckpt", "--trainer.max_epochs=2"]


def test_missing_per_fold_files_are_named(tmp_path):
    (tmp_path / "fm_0.ckpt").write_bytes(b"")
    overrides = [f"--model.init_args.fm={tmp_path}/fm_{{fold}}.ckpt", "--seed_everything={fold}"]
    check_fold_paths(overrides, [0])  # present; the seed is not a path
    with pytest.raises(ConfigError, match=r"fold 2: --model.init_args.fm=.*fm_2\.ckpt") as error:
        check_fold_paths(overrides, [0, 2])
    assert "fold 0" not in str(error.value) and "--only_folds" in str(error.value)


@pytest.fixture(scope="module")
def per_fold_fms(tmp_path_factory) -> Path:
    """Two tiny sEMG FMs (save_pretrained folders) with different weights, one per fold."""
    from neurorvq.models.fm import NeuroRVQFoundationModel

    root = tmp_path_factory.mktemp("fms")
    for fold in (0, 1):
        torch.manual_seed(fold)
        NeuroRVQFoundationModel("semg200", pretraining=False, depth=1).save_pretrained(root / f"fm_{fold}")
    return root


def test_each_fold_fine_tunes_and_probes_its_own_fm(armband, per_fold_fms, tmp_path):
    template = f"--model.init_args.fm={per_fold_fms}/fm_{{fold}}"
    out = tmp_path / "finetune"
    run_cv(settings(armband, n_folds=2, extra=[template]), out)
    for fold in (0, 1):
        record = json.loads((out / f"fold_{fold}/metrics.json").read_text())
        assert record["model"]["fm"] == f"{per_fold_fms}/fm_{fold}" and record["model"]["backbone"] == "pretrained"
    assert json.loads((out / "cv.json").read_text())["overrides"][-1] == template  # the template, not one fold's

    probe = tmp_path / "probe"
    run_cv(settings(armband, n_folds=2, folds_file=str(out / "folds.json"), baseline="linear_probe",
                    extra=[template]), probe)
    for fold in (0, 1):
        record = json.loads((probe / f"fold_{fold}/metrics.json").read_text())
        assert record["model"]["fm"] == f"{per_fold_fms}/fm_{fold}" and record["model"]["frozen"]


def test_a_fold_without_its_checkpoint_is_refused_before_training(armband, per_fold_fms, tmp_path):
    out = tmp_path / "missing"
    with pytest.raises(ConfigError, match=r"fold 2: --model.init_args.fm=.*fm_2"):
        run_cv(settings(armband, n_folds=3, extra=[f"--model.init_args.fm={per_fold_fms}/fm_{{fold}}"]), out)
    assert not list(out.glob("fold_*"))
    # the folds that have their checkpoint can run now (the loader takes the first of them)
    run_cv(settings(armband, n_folds=3, only_folds=[1], extra=[f"--model.init_args.fm={per_fold_fms}/fm_{{fold}}"]),
           out)
    assert [p.parent.name for p in out.glob("fold_*/metrics.json")] == ["fold_1"]


def test_fold_field_only_in_model_overrides():
    from neurorvq.crossval.per_fold import check_fold_fields

    check_fold_fields(["--model.init_args.fm=runs/fm_fold{fold}/last.ckpt"], ["model.init_args.lr=[1e-3]"])
    with pytest.raises(ConfigError, match=r"only replaced in --model.*--data.init_args.root=d{fold}"):
        check_fold_fields(["--data.init_args.root=d{fold}"])
    with pytest.raises(ConfigError, match=r"--grid model.init_args.fm=\[a{fold}\]"):
        check_fold_fields([], ["model.init_args.fm=[a{fold}]"])
