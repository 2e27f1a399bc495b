"""The tokenizer comparison harness on constructed tokenizers with known errors, against direct scipy computations,
and on a tiny NeuroRVQ beside the toy family."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy.signal import butter, filtfilt, sosfiltfilt

from neurorvq import NeuroRVQTokenizer
from neurorvq.compat import IncompatibleSignal
from neurorvq.errors import ConfigError
from neurorvq.eval.compare import (PUBLISHED_LABEL, TABLE_1, bits_per_second, compare_tokenizers, published_rows)
from neurorvq.eval.compare.report import markdown_report, mse_table, write_report
from neurorvq.families.toy import ToyVQTokenizer
from neurorvq.registry import get_modality
from neurorvq.tokenizers import Encoded, SideField, SignalContract, Tokenizer, TokenLayout

SPEC = get_modality("eeg")
CHANNELS = ["fp1", "cz", "o2"]
IDS = torch.tensor([SPEC.channels.index(c) for c in CHANNELS])
FS, PATCH, PATCHES = 200.0, 200, 2
SAMPLES = PATCH * PATCHES
ALPHA_HZ, ALPHA_AMPLITUDE = 10.0, 5.0
TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)


class Constructed:
    """A tokenizer satisfying the protocol whose reconstruction is known: the input ("identity"), zeros
    ("silence") or the input plus a 10 Hz sinusoid ("alpha"). Ids: level 0 = the patch's index in its channel
    (codebook of 4), level 1 = 0 (codebook of 8); the window itself travels as side information."""

    family = "constructed"
    model_kind = "tokenizer"
    loss_names = ("loss",)

    def __init__(self, kind: str, sampling_rate: float = FS, unit: str = "uV", patch_length: int = PATCH) -> None:
        self.kind = kind
        self.signal = SPEC
        self._contract = SignalContract("eeg", sampling_rate, unit, patch_length, 8, SPEC.channels)

    @property
    def layout(self) -> TokenLayout:
        return TokenLayout(("g",), (2,), ((4, 8),), side=(SideField("window", (len(CHANNELS), SAMPLES)),))

    @property
    def contract(self) -> SignalContract:
        return self._contract

    def tokenize(self, x: torch.Tensor, channels) -> Encoded:
        b, c, t = x.shape
        a = t // self._contract.patch_length
        level0 = torch.arange(c * a) % a
        ids = torch.stack([level0, torch.zeros_like(level0)]).expand(b, 2, c * a).clone()
        return Encoded(ids, {"window": x.clone()}, self.layout, c, a)

    def detokenize(self, encoded: Encoded, channels) -> torch.Tensor:
        x = encoded.side["window"]
        if self.kind == "silence":
            return torch.zeros_like(x)
        if self.kind == "alpha":
            t = torch.arange(x.shape[-1], dtype=x.dtype) / FS
            return x + ALPHA_AMPLITUDE * torch.sin(2 * math.pi * ALPHA_HZ * t)
        return x.clone()

    def config_hash(self) -> str:
        return self.kind

    def to_config(self) -> dict:
        return {"family": self.family, "kind": self.kind}


def windows(n: int = 10, batch: int = 4, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` windows [3 channels, 400 samples] of brown-ish noise plus a 6 Hz tone, in batches."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(SAMPLES) / FS
    x = 10 * torch.randn(n, len(CHANNELS), SAMPLES, generator=g).cumsum(-1) / SAMPLES ** 0.5 \
        + 15 * torch.sin(2 * math.pi * 6.0 * t) + 5 * torch.randn(n, len(CHANNELS), SAMPLES, generator=g)
    return [{"signal": x[i:i + batch], "channel_ids": IDS} for i in range(0, n, batch)]


def stacked(batches) -> np.ndarray:
    return torch.cat([b["signal"] for b in batches]).double().numpy()


def standardised(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(np.maximum(x.var(axis=(1, 2), ddof=1, keepdims=True), 1e-8))


def reference_band(z: np.ndarray, low: float, high: float, mode: str) -> np.ndarray:
    """The two filtering modes written directly with scipy: per 200-sample patch row in (b, a) form with filtfilt's
    default padding, or per continuous channel in second-order sections."""
    if mode == "patch":
        b, a = butter(2, [low, high], btype="bandpass", fs=FS)
        rows = z.reshape(z.shape[0], z.shape[1], -1, PATCH)
        return filtfilt(b, a, rows).reshape(z.shape)
    return sosfiltfilt(butter(2, [low, high], btype="bandpass", fs=FS, output="sos"), z, axis=-1)


def test_the_constructed_tokenizers_satisfy_the_protocol():
    assert isinstance(Constructed("identity"), Tokenizer)


def test_identity_scores_zero_and_silence_scores_one_minus_one_over_n():
    batches = windows()
    result = compare_tokenizers({"identity": Constructed("identity"), "silence": Constructed("silence")}, batches,
                                SPEC)
    assert result.windows == 10 and result.modes == ("patch", "channel")
    identity, silence = result.scores
    assert identity.windows == silence.windows == 10
    for mode in ("patch", "channel"):
        assert list(identity.mse[mode]) == ["raw", "delta", "theta", "alpha", "beta", "gamma"]
        assert all(v < 1e-24 for v in identity.mse[mode].values())
        # zeros standardise to zeros; the signal's z has unbiased variance 1: mean(z^2) = (n - 1) / n, n = C*T
        n = len(CHANNELS) * SAMPLES
        assert silence.mse[mode]["raw"] == pytest.approx((n - 1) / n, rel=1e-12)
        # each band's error is the band-filtered signal's power: the scipy reference, per mode
        z = standardised(stacked(batches))
        for name, low, high in SPEC.bands:
            expected = np.mean(reference_band(z, low, high, mode) ** 2)
            assert silence.mse[mode][name] == pytest.approx(expected, rel=1e-9)
    # the two modes differ where the patch edges matter most: the delta band
    assert abs(silence.mse["patch"]["delta"] - silence.mse["channel"]["delta"]) > 1e-3


def test_an_added_alpha_tone_lands_in_the_alpha_column():
    batches = windows()
    result = compare_tokenizers([Constructed("alpha")], batches, SPEC)
    (score,) = result.scores
    assert score.name == "constructed"
    x = torch.cat([b["signal"] for b in batches])
    t = torch.arange(SAMPLES) / FS
    rec = x + ALPHA_AMPLITUDE * torch.sin(2 * math.pi * ALPHA_HZ * t)  # in float32, as the tokenizer returns it
    zx, zr = standardised(x.double().numpy()), standardised(rec.double().numpy())
    for mode in ("patch", "channel"):
        assert score.mse[mode]["raw"] == pytest.approx(np.mean((zx - zr) ** 2), rel=1e-12)
        for name, low, high in SPEC.bands:
            expected = np.mean((reference_band(zx, low, high, mode) - reference_band(zr, low, high, mode)) ** 2)
            assert score.mse[mode][name] == pytest.approx(expected, rel=1e-9)
        others = [v for k, v in score.mse[mode].items() if k not in ("raw", "alpha")]
        # the rest: the rescaling by standardisation and, per patch, the tone's edges leaking into delta
        assert score.mse[mode]["alpha"] > 5 * max(others)
        assert score.mse[mode]["alpha"] > 0.9 * score.mse[mode]["raw"]


def test_bits_per_second_usage_and_perplexity_from_the_ids():
    result = compare_tokenizers([Constructed("identity")], windows(), SPEC, modes=["channel"])
    (score,) = result.scores
    assert score.bits_per_second == 5.0  # log2(4) + log2(8) bits per 1-s token
    assert score.tokens_per_second == 1.0
    # level 0 sees ids 0 and 1 equally often (2 patches per channel); level 1 only id 0
    assert score.codebook["usage"] == [[0.5, 0.125]]
    assert score.codebook["perplexity"] == [[pytest.approx(2.0), pytest.approx(1.0)]]
    assert score.codebook["tokens"] == 10 * len(CHANNELS) * PATCHES
    # NeuroRVQ's layout by hand: 4 branches x 8 levels x log2(8192) = 13 bits, one token per second and channel
    nrvq = TokenLayout.uniform(["b0", "b1", "b2", "b3"], 8, 8192)
    assert bits_per_second(nrvq, 200.0, 200) == 4 * 8 * 13
    assert bits_per_second(nrvq, 1000.0, 200) == 5 * 4 * 8 * 13


def test_max_windows_cuts_the_same_windows_for_every_tokenizer():
    result = compare_tokenizers({"a": Constructed("identity"), "b": Constructed("silence")}, windows(), SPEC,
                                max_windows=6, modes=["patch"])
    assert result.windows == 6 and [s.windows for s in result.scores] == [6, 6]
    assert [s.codebook["tokens"] for s in result.scores] == [6 * 6, 6 * 6]
    assert result.example.signal.shape == (3, SAMPLES) and result.example.channels == CHANNELS
    assert np.allclose(result.example.reconstructions["a"], result.example.signal)


def test_tokenizers_that_cannot_take_the_data_are_named_with_the_field():
    with pytest.raises(IncompatibleSignal, match=r"tokenizer 'fast' \(constructed, 'eeg'\) cannot take the 'eeg' "
                                                  r"data.*sampling_rate 200 Hz vs 250 Hz"):
        compare_tokenizers({"ok": Constructed("identity"), "fast": Constructed("identity", sampling_rate=250.0)},
                           windows(), SPEC)
    with pytest.raises(IncompatibleSignal, match="tokenizer 'mv'.*unit uV vs mV"):
        compare_tokenizers({"mv": Constructed("identity", unit="mV")}, windows(), SPEC)
    with pytest.raises(IncompatibleSignal, match="tokenizer 'short'.*patch_length=200 vs patch_length=100"):
        compare_tokenizers({"short": Constructed("identity", patch_length=100)}, windows(), SPEC)
    ragged = [{"signal": torch.randn(2, 3, 300), "channel_ids": IDS}]
    with pytest.raises(IncompatibleSignal, match="windows of 300 samples are not a whole number of 200-sample"):
        compare_tokenizers([Constructed("identity")], ragged, SPEC)
    ecg = ToyVQTokenizer("ecg")
    with pytest.raises(IncompatibleSignal, match=r"tokenizer 'toy_vq'.*unit uV vs mV; patch_length=200 vs"):
        compare_tokenizers([ecg], windows(), SPEC)


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="modes is .*'both'.*give one or both of patch, channel"):
        compare_tokenizers([Constructed("identity")], windows(), SPEC, modes=["both"])
    with pytest.raises(ConfigError, match="max_windows is 0"):
        compare_tokenizers([Constructed("identity")], windows(), SPEC, max_windows=0)
    with pytest.raises(ConfigError, match="two tokenizers are named 'constructed'"):
        compare_tokenizers([Constructed("identity"), Constructed("silence")], windows(), SPEC)
    with pytest.raises(ConfigError, match="tokenizers is empty"):
        compare_tokenizers([], windows(), SPEC)


def test_reports_name_the_mode_label_the_published_rows_and_agree(tmp_path):
    result = compare_tokenizers({"identity": Constructed("identity"), "silence": Constructed("silence")},
                                windows(), SPEC)
    text = markdown_report(result, {"data": "synthetic", "split": "test"})
    assert "## Reconstruction MSE, filtering mode `patch`" in text
    assert "## Reconstruction MSE, filtering mode `channel`" in text
    assert "each 200-sample (1 s) patch of each channel on its own" in mse_table(result, "patch")
    assert "each continuous channel" in mse_table(result, "channel")
    assert f"| LaBraM — {PUBLISHED_LABEL} | — | — | 1.071 | 1.561 | 0.184 | 0.099 | 0.122 | 0.020 |" in text
    assert f"| NeuroRVQ — {PUBLISHED_LABEL} |" in text and "10 windows" in text
    paths = write_report(result, tmp_path / "out", {"split": "test"})
    assert set(paths) == {"markdown", "csv", "codebook_csv", "json", "figure"}
    assert paths["figure"].stat().st_size > 10_000
    report = json.loads(paths["json"].read_text())
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [(r["model"], r["mode"]) for r in rows] == [
        ("identity", "patch"), ("silence", "patch"), ("identity", "channel"), ("silence", "channel"),
        ("LaBraM", "not stated"), ("NeuroRVQ", "not stated")]
    assert all(r["source"] == PUBLISHED_LABEL for r in rows[4:]) and rows[0]["source"] == "this run"
    by_name = {t["name"]: t for t in report["tokenizers"]}
    for row in rows[:4]:
        scores = by_name[row["model"]]
        for column in ("raw", "delta", "theta", "alpha", "beta", "gamma"):
            assert float(row[column]) == scores["mse"][row["mode"]][column]
            assert f"{scores['mse'][row['mode']][column]:.4f}" in paths["markdown"].read_text()
        assert float(row["bits_per_second"]) == scores["bits_per_second"] == 5.0
        assert float(row["mean_usage"]) == scores["codebook"]["mean_usage"]
    assert [p["label"] for p in report["published"]] == [r.label for r in TABLE_1]
    assert report["mode_definitions"]["patch"].startswith("band filters applied to each 200-sample")
    assert report["windows"] == 10 and report["context"] == {"split": "test"}
    levels = list(csv.DictReader(paths["codebook_csv"].open()))
    assert [(r["model"], r["group"], r["level"], r["codebook_size"], r["usage"]) for r in levels[:2]] == [
        ("identity", "g", "0", "4", "0.5"), ("identity", "g", "1", "8", "0.125")]


def test_published_rows_only_for_table_1_columns():
    assert len(published_rows(["raw", "delta", "theta", "alpha", "beta", "gamma"])) == 2
    assert published_rows(["raw", "low", "mid", "high"]) == []


def test_neurorvq_and_toy_family_on_the_same_windows():
    from neurorvq.datamodules.synthetic import SyntheticDataModule

    torch.manual_seed(0)
    data = SyntheticDataModule("eeg", CHANNELS, window_seconds=2.0, test_windows=6, batch_size=4)
    data.setup("test")
    tokenizers = {"nrvq": NeuroRVQTokenizer("eeg", **TINY), "toy": ToyVQTokenizer("eeg", codebook_size=16),
                  "identity": Constructed("identity")}
    result = compare_tokenizers(tokenizers, data.test_dataloader(), data, modes=["patch"])
    nrvq, toy, identity = result.scores
    assert result.windows == 6 and [s.windows for s in result.scores] == [6, 6, 6]
    assert (nrvq.family, toy.family) == ("neurorvq", "toy_vq")
    assert nrvq.bits_per_second == 4 * 2 * 5  # 4 branches x 2 levels x log2(32), one token per second
    assert toy.bits_per_second == 4
    assert nrvq.codebook["tokens"] == toy.codebook["tokens"] == 6 * 3 * 2
    assert len(nrvq.codebook["usage"]) == 4 and all(len(row) == 2 for row in nrvq.codebook["usage"])
    for s in (nrvq, toy):
        assert all(np.isfinite(v) and v > 0 for v in s.mse["patch"].values())
    assert max(identity.mse["patch"].values()) < 1e-20
    assert set(result.example.reconstructions) == {"nrvq", "toy", "identity"}
