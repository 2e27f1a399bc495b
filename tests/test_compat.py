"""Compatibility of data, tokenizers and FMs by the fields of their signals, never by their names."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from neurorvq import ConfigError, NeuroRVQTokenizer, get_modality
from neurorvq.compat import (IncompatibleSignal, Signal, canonical_unit, channel_rows, check_compatible,
                             missing_channels, mismatches)
from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.tasks.channels import ChannelRows, model_ids
from neurorvq.tasks.tokenizer import TokenizerTask

TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 32, "code_dim": 8}


def signal(name="x", rate=200.0, unit="uV", patch=200, channels=("a", "b", "c"), **kwargs) -> Signal:
    return Signal(name, rate, unit, patch, tuple(channels), **kwargs)


def test_every_differing_field_is_named_with_both_values():
    found = mismatches(get_modality("ecg"), get_modality("eeg"))
    assert [m.field for m in found] == ["unit", "patch_length", "channels"]
    assert found[0].text == "unit mV vs uV" and found[1].text == "patch_length=40 vs patch_length=200 samples"
    assert "channel(s) avf, avl, avr, i, ii, iii, v1, v2 and 7 more of the data" in found[2].text
    with pytest.raises(IncompatibleSignal, match=r"^ecg vs eeg: unit mV vs uV; patch_length=40 vs "):
        check_compatible(get_modality("ecg"), get_modality("eeg"), headline="ecg vs eeg")
    assert isinstance(IncompatibleSignal("x"), ConfigError)  # the CLI prints it as one line


def test_names_do_not_matter_fields_do():
    assert mismatches(signal("ppg"), signal("ppg_v2", unit="µV")) == []
    assert canonical_unit(" μV ") == "uV" and canonical_unit("millivolts") == "mV" and canonical_unit("bpm") == "bpm"
    rate = mismatches(signal(rate=250.0), signal())
    assert [m.text for m in rate] == ["sampling_rate 250 Hz vs 200 Hz"]


def test_data_channels_need_only_be_in_the_model_vocabulary():
    model = signal(channels=("a", "b", "c", "d"))
    assert mismatches(signal(channels=("b", "d")), model) == []
    assert missing_channels(signal(channels=("b", "z", "y")), model) == ["z", "y"]
    # a data vocabulary with names the recordings never use: only the used ones count
    assert missing_channels(signal(channels=("b", "z"), used=frozenset({"b"})), model) == []
    # case rules are the model's
    strict = signal(channels=("Fp1", "Cz"), case_sensitive=True)
    assert missing_channels(signal(channels=("fp1", "Cz")), strict) == ["fp1"]


def test_windows_must_fit_the_model_temporal_table():
    model = signal(max_patches=4)
    assert mismatches(signal(window_samples=800), model) == []
    [too_long] = mismatches(signal(window_samples=1000), model)
    assert too_long.field == "window" and "5 patches per channel exceed the model's max_patches=4 (4 s)" in too_long.text
    [ragged] = mismatches(signal(window_samples=300), model)
    assert "not a whole number of 200-sample patches" in ragged.text


def test_channel_rows_pass_prefix_vocabularies_through_and_translate_others():
    model = signal(channels=("a", "b", "c", "d"))
    assert channel_rows(signal(channels=("a", "b")), model) is None  # the model's vocabulary with names appended
    assert channel_rows(signal(channels=("c", "a", "q")), model) == [2, 0, -1]
    data = SimpleNamespace(spec=SimpleNamespace(name="rev", sampling_rate=200.0, unit="uV", patch_length=200,
                                                channels=("c", "a")))
    rows = ChannelRows.bind(data, model, headline="data vs model")
    assert torch.equal(model_ids(rows, torch.tensor([[0, 1], [1, 0]])), torch.tensor([[2, 0], [0, 2]]))
    assert model_ids(None, torch.tensor([1])).tolist() == [1]
    assert ChannelRows.bind(SimpleNamespace(), model, headline="no spec") is None


def test_contracts_of_models_are_compared_like_specs():
    tok = NeuroRVQTokenizer("eeg", **TINY)
    assert Signal.of(tok).max_patches == 256 and Signal.of(tok).channels == get_modality("eeg").channels
    assert mismatches(get_modality("eeg"), tok) == []


def test_training_with_windows_beyond_the_model_temporal_table_is_refused_before_any_step(tmp_path):
    task = TokenizerTask("eeg", tokenizer={**TINY, "max_patches": 2})
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz"], window_seconds=4.0, train_windows=4,
                               val_windows=2, test_windows=2, batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(IncompatibleSignal, match=r"the 'eeg' data does not fit the 'eeg' tokenizer \(data vs "
                                                  r"tokenizer\): windows of 4 patches per channel exceed the model's "
                                                  r"max_patches=2"):
        trainer.fit(task, data)


def test_a_tokenizer_with_a_vocabulary_of_its_own_trains_on_the_modality_s_data(tmp_path):
    """NeuroRVQConfig.channels: the model's rows are its own; the data's ids (the EEG vocabulary's) are translated,
    and a data channel the model lacks is refused before the first step."""
    tiny = {**TINY, "channels": ("cz", "c3", "c4")}
    task = TokenizerTask("eeg", tokenizer=tiny)
    assert task.tokenizer.contract.channels == ("cz", "c3", "c4") and task.tokenizer.spec.spatial_rows == 4
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz"], window_seconds=2.0, train_windows=4,
                               val_windows=2, test_windows=2, batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        limit_val_batches=0)
    trainer.fit(task, data)
    eeg = get_modality("eeg").channels
    assert task.model_ids(torch.tensor([eeg.index("c3"), eeg.index("cz")])).tolist() == [1, 0]
    other = SyntheticDataModule(modality="eeg", channels=["c3", "o1"], window_seconds=2.0, train_windows=4,
                                val_windows=2, test_windows=2, batch_size=2)
    with pytest.raises(IncompatibleSignal, match=r"channel\(s\) o1 of the data are not in the model's 3-name "
                                                  r"vocabulary"):
        L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, default_root_dir=tmp_path).fit(TokenizerTask("eeg", tokenizer=tiny),
                                                                            other)
