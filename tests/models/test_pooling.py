"""The pooling registry: shapes, vocabulary order, errors, and channel awareness of a fresh FM."""

from __future__ import annotations

import pytest
import torch

from neurorvq.errors import ConfigError
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.models.pooling import POOLINGS, build_pooling


def test_registry_lists_the_options():
    assert {"mean", "channel_concat"} <= set(POOLINGS)


def test_mean_shape_and_value():
    x = torch.randn(3, 8, 5)  # [B, L, W]
    pool = build_pooling("mean", 5)
    assert pool.out_features == 5
    assert torch.allclose(pool(x, torch.arange(4)), x.mean(1))


def test_channel_concat_shape_and_vocabulary_order():
    b, c, a, w = 2, 3, 4, 5
    x = torch.randn(b, c * a, w)
    pool = build_pooling("channel_concat", w, num_channels=c)
    assert pool.out_features == c * w
    ids = torch.tensor([7, 2, 5])  # rows in the batch: vocabulary ids 7, 2, 5 -> order 2, 5, 7 = rows 1, 2, 0
    out = pool(x, ids)
    per_channel = x.reshape(b, c, a, w).mean(2)
    assert out.shape == (b, c * w)
    assert torch.allclose(out, per_channel[:, [1, 2, 0]].reshape(b, c * w))
    # per-sample ids [B, C] give the same; reordering rows together with their ids changes nothing
    perm = torch.tensor([2, 0, 1])
    x_perm = x.reshape(b, c, a, w)[:, perm].reshape(b, c * a, w)
    assert torch.allclose(pool(x_perm, ids[perm].expand(b, c)), out)


def test_errors_name_the_fix():
    with pytest.raises(ConfigError, match="unknown pooling 'max'; valid: channel_concat, mean"):
        build_pooling("max", 4)
    with pytest.raises(ConfigError, match="pool_channels"):
        build_pooling("channel_concat", 4)
    pool = build_pooling("channel_concat", 4, num_channels=3)
    with pytest.raises(ConfigError, match="built for 3 channels but a batch has 2"):
        pool(torch.randn(1, 4, 4), torch.arange(2))


def _roll_sensitivity(model: NeuroRVQFoundationModel, x: torch.Tensor, channels: list[str]) -> float:
    """Mean shift of the pooled features when the signal rows are rolled (names fixed), relative to the mean
    distance of the pooled features to their batch mean."""
    with torch.no_grad():
        f = model.classifier_features(x, channels)
        g = model.classifier_features(x.roll(1, dims=1), channels)
    spread = (f - f.mean(0)).norm(dim=-1).mean()
    return float((g - f).norm(dim=-1).mean() / spread)


def test_channel_concat_makes_a_fresh_fm_channel_aware_and_mean_does_not():
    torch.manual_seed(0)
    channels = ["Fp1", "C3", "Cz", "C4", "O1", "O2"]
    x = torch.randn(8, len(channels), 400) * 20
    x[:, 1] *= 4  # channels differ in amplitude, as electrodes over active muscles or sources do
    aware = NeuroRVQFoundationModel("eeg", depth=2, pretraining=False, num_classes=3, pooling="channel_concat",
                                    pool_channels=len(channels)).eval()
    blind = NeuroRVQFoundationModel("eeg", depth=2, pretraining=False, num_classes=3).eval()
    blind.load_state_dict({k: v for k, v in aware.state_dict().items() if not k.startswith(("fc_norm", "head"))},
                          strict=False)
    assert _roll_sensitivity(aware, x, channels) > 0.05
    assert _roll_sensitivity(blind, x, channels) < 0.05  # the official mean: near-blind when fresh
    assert aware.fc_norm.normalized_shape == (len(channels) * 800,)


def test_pooling_survives_save_pretrained(tmp_path):
    model = NeuroRVQFoundationModel("eeg", depth=1, pretraining=False, num_classes=2, pooling="channel_concat",
                                    pool_channels=3)
    again = NeuroRVQFoundationModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert again.options["pooling"] == "channel_concat" and again.head.in_features == 3 * 800
