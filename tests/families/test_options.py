"""Typed model options: one frozen dataclass per family and model kind, read by LightningCLI (every field in
--print_config, misspelt fields refused in one line), built into models, stored as plain data."""

import dataclasses

import lightning as L
import pytest
import torch
import yaml

from neurorvq import ConfigError, list_modalities
from neurorvq.cli import main
from neurorvq.families.neurorvq import (ARCHITECTURE_FIELDS, FM_ARCHITECTURE_FIELDS, NeuroRVQFMOptions,
                                        NeuroRVQOptions)
from neurorvq.families.options import FMOptions, TokenizerOptions, coerce_options
from neurorvq.families.toy import ToyVQOptions, ToyVQTokenizer
from neurorvq.models.fm import FM_OPTIONS
from neurorvq.models.tokenizer import TOKENIZER_OPTIONS, NeuroRVQTokenizer
from neurorvq.tasks.tokenizer import TokenizerTask


def test_the_option_classes_cover_the_models_fields_exactly():
    fields = [f.name for f in dataclasses.fields(NeuroRVQOptions)]
    assert fields == [*ARCHITECTURE_FIELDS, *TOKENIZER_OPTIONS]
    fm_fields = {f.name for f in dataclasses.fields(NeuroRVQFMOptions)}
    assert fm_fields == set(FM_ARCHITECTURE_FIELDS) | {"depth", "init_values", "check_inputs", "crop"}
    assert fm_fields - set(FM_ARCHITECTURE_FIELDS) <= set(FM_OPTIONS)
    # a dataclass base would make jsonargparse ignore the subclasses: the bases stay plain classes
    assert not dataclasses.is_dataclass(TokenizerOptions) and not dataclasses.is_dataclass(FMOptions)


@pytest.mark.parametrize("modality", list_modalities())
def test_default_options_build_every_modality_s_tokenizer(modality):
    options = NeuroRVQOptions(encoder_depth=1, decoder_depth=0, codebook_size=16, code_dim=8)
    model = options.build(modality)
    assert isinstance(model, NeuroRVQTokenizer) and model.spec.encoder_depth == 1
    assert model.spec.embed_dim == model.signal.config("neurorvq").embed_dim  # None fields: the modality's


def test_mappings_and_class_paths_coerce_with_named_mistakes():
    default = NeuroRVQOptions()
    assert coerce_options(None, default, "tokenizer") is default
    assert coerce_options({"encoder_depth": 2}, default, "tokenizer") == NeuroRVQOptions(encoder_depth=2)
    toy = coerce_options({"class_path": "neurorvq.families.toy.ToyVQOptions", "init_args": {"hidden": 8}},
                         default, "tokenizer")
    assert toy == ToyVQOptions(hidden=8) and isinstance(toy.build("eeg"), ToyVQTokenizer)
    with pytest.raises(ConfigError, match=r"unknown tokenizer field\(s\) for NeuroRVQOptions: 'encoder_dept'; did "
                                          r"you mean 'encoder_depth'"):
        coerce_options({"encoder_dept": 2}, default, "tokenizer")
    with pytest.raises(ConfigError, match="'neurorvq.families.neurorvq.NeuroRVQFMOptions' is not a TokenizerOptions"):
        coerce_options({"class_path": "neurorvq.families.neurorvq.NeuroRVQFMOptions"}, default, "tokenizer")
    assert NeuroRVQOptions(encoder_depth=2).changes() == {"encoder_depth": 2}


def test_checkpoints_store_the_options_as_plain_data(tmp_path):
    from neurorvq.datamodules.synthetic import SyntheticDataModule

    task = TokenizerTask("eeg", tokenizer={"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2,
                                           "codebook_size": 16, "code_dim": 8})
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(task, SyntheticDataModule(modality="eeg", channels=["c3", "cz"], window_seconds=2.0,
                                          train_windows=4, val_windows=2, test_windows=2, batch_size=2))
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    saved = torch.load(tmp_path / "t.ckpt", map_location="cpu", weights_only=True)  # no pickled dataclass
    options = saved["hyper_parameters"]["tokenizer"]
    assert options["class_path"] == "neurorvq.families.neurorvq.NeuroRVQOptions"
    assert options["init_args"]["encoder_depth"] == 1 and options["init_args"]["embed_dim"] is None


def test_print_config_lists_every_option_field(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(_quickstart()), "--print_config"])
    assert info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    tokenizer = config["model"]["init_args"]["tokenizer"]
    assert tokenizer["class_path"] == "neurorvq.families.neurorvq.NeuroRVQOptions"
    assert list(tokenizer["init_args"]) == [f.name for f in dataclasses.fields(NeuroRVQOptions)]
    assert tokenizer["init_args"]["encoder_depth"] == 2 and tokenizer["init_args"]["embed_dim"] is None


def test_a_misspelt_nested_field_is_one_line(tmp_path, monkeypatch, cli_error):
    monkeypatch.chdir(tmp_path)
    err = cli_error(["fit", "--config", str(_quickstart()), "--model.init_args.tokenizer.encoder_dpth=2"])
    assert "unknown model.init_args.tokenizer field(s) for NeuroRVQOptions: 'encoder_dpth'" in err
    assert err.count("\n") <= 2
    err = cli_error(["fit", "--config", str(_quickstart()), "--model.init_args.tokenizer.class_path="
                     "neurorvq.families.toy.ToyVQOptions", "--model.init_args.tokenizer.init_args.hiden=4"])
    assert "for ToyVQOptions: 'hiden'; did you mean 'hidden'" in err


def _quickstart():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"
