"""Channel sensitivity on constructed models: a channel-blind one is flagged, a channel-aware one is not; the
linear probe scores ~1 on separable features; the pretraining diagnostics reach the cv report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurorvq.baselines.logistic import LogisticProbe
from neurorvq.crossval.feature_models import score_probabilities
from neurorvq.crossval.runner import pretrain_sections
from neurorvq.crossval.sensitivity import (BLIND_BELOW, array_sensitivity, channel_sensitivity, sensitivity_cell,
                                           task_sensitivity)


class Constructed(torch.nn.Module):
    """A classifier whose features are either the per-channel powers (channel-aware) or their mean over
    channels (channel-blind); the label is the arg-max feature."""

    def __init__(self, aware: bool) -> None:
        super().__init__()
        self.aware = aware

    def features(self, batch):
        power = batch["signal"].pow(2).mean(-1)  # [B, C]
        return power if self.aware else power.mean(-1, keepdim=True).expand_as(power)

    def logits(self, batch):
        return self.features(batch)

    def probabilities(self, logits):
        return logits.softmax(-1)

    @property
    def device(self):
        return torch.device("cpu")


def _batches():
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    return [{"signal": torch.randn(8, 4, 100, generator=g) * scale * (1 + torch.rand(8, 1, 1, generator=g)),
             "label": torch.zeros(8, dtype=torch.long)} for _ in range(3)]


def test_a_channel_blind_model_is_flagged_and_an_aware_one_is_not():
    blind = task_sensitivity(Constructed(aware=False), _batches())
    aware = task_sensitivity(Constructed(aware=True), _batches())
    assert blind["relative_change"] < BLIND_BELOW and blind["channel_blind"] and blind["changed_predictions"] == 0
    assert aware["relative_change"] > 0.5 and not aware["channel_blind"] and aware["changed_predictions"] == 1.0
    assert blind["windows"] == aware["windows"] == 24
    cell = sensitivity_cell([{"channel_sensitivity": blind}, {"channel_sensitivity": blind}])
    assert cell.endswith("channel-blind") and "0% changed" in cell
    assert "channel-blind" not in sensitivity_cell([{"channel_sensitivity": aware}])
    assert sensitivity_cell([{}]) == "—"


def test_hand_computed_sensitivity_and_one_channel():
    f = np.array([[0.0, 0.0], [2.0, 0.0]])  # mean (1, 0): each window 1 from the mean
    g = np.array([[0.0, 0.5], [2.0, 0.5]])  # moved by 0.5 each
    out = channel_sensitivity(f, g, np.array([0, 1]), np.array([0, 0]), num_channels=3)
    assert out["relative_change"] == pytest.approx(0.5) and out["changed_predictions"] == 0.5
    single = channel_sensitivity(f, f, np.array([0, 1]), np.array([0, 1]), num_channels=1)
    assert single["relative_change"] is None and "one channel" in single["note"]


def test_array_sensitivity_of_a_feature_model():
    x = np.random.default_rng(0).normal(size=(10, 3, 50)) * np.array([1.0, 2.0, 3.0])[None, :, None]
    out = array_sensitivity(lambda w: (w ** 2).mean(-1), lambda f: f.argmax(-1), x)
    assert out["relative_change"] > 0.5 and out["changed_predictions"] == 1.0


def test_linear_probe_on_separable_features_scores_about_one():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    centres = rng.normal(size=(3, 16)) * 4
    features = centres[labels] + rng.normal(size=(120, 16))
    train, val, test = np.arange(0, 120, 3), np.arange(1, 120, 3), np.arange(2, 120, 3)
    probe = LogisticProbe(3).fit(features[train], labels[train], features[val], labels[val])
    metrics = score_probabilities(probe.predict_proba(features[test]), labels[test], 3)
    assert metrics["balanced_accuracy"] >= 0.97 and set(probe.validation_scores) == {0.01, 0.1, 1.0}


def test_pretraining_diagnostics_reach_the_report(tmp_path):
    from neurorvq.tasks.pretrain_diagnostics import CHECKPOINT_KEY, diagnostics_table

    train = torch.zeros(1, 2, 4)
    train[0, 0] = torch.tensor([5.0, 1.0, 0.0, 0.0])
    train[0, 1] = torch.tensor([0.0, 0.0, 3.0, 3.0])
    val = torch.zeros(1, 2, 4)
    val[0, 0] = torch.tensor([2.0, 2.0, 0.0, 0.0])
    val[0, 1] = torch.tensor([0.0, 1.0, 3.0, 0.0])
    table = diagnostics_table(train, val, torch.tensor([[3.0, 4.0]]), 4)
    ckpt = tmp_path / "fm.ckpt"
    torch.save({CHECKPOINT_KEY: table, "state_dict": {}}, ckpt)

    rows = [{"fold": k, "model": {"fm": str(ckpt)}} for k in (0, 1)]
    sections = pretrain_sections(rows, tmp_path)
    assert len(sections) == 1 and str(ckpt) in sections[0][0]
    assert "most frequent code" in sections[0][1] and "| 0 | 0 |" in sections[0][1]
    assert json.loads((tmp_path / "pretrain_diagnostics.json").read_text())["codebook_size"] == 4
    assert pretrain_sections([{"fold": 0, "model": {"fm": None}}], tmp_path) == []

    # one FM per fold ({fold} overrides): one line per checkpoint, in fold order, the file maps each to its folds
    other = tmp_path / "fm_other.ckpt"
    torch.save({CHECKPOINT_KEY: {**table, "epoch": 7}, "state_dict": {}}, other)
    rows = [{"fold": 1, "model": {"fm": str(other)}}, {"fold": 0, "model": {"fm": str(ckpt)}},
            {"fold": 0, "model": {"fm": str(ckpt)}}]
    (title, text), = pretrain_sections(rows, tmp_path)
    assert "one FM per fold" in title
    lines = [line for line in text.splitlines() if line.startswith("| fold")]
    assert [line.split(" | ")[0] for line in lines] == ["| fold 0", "| fold 1"] and "| 7 |" in lines[1]
    stored = json.loads((tmp_path / "pretrain_diagnostics.json").read_text())["checkpoints"]
    assert stored[str(ckpt)]["folds"] == [0] and stored[str(other)]["diagnostics"]["epoch"] == 7
