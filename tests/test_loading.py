"""neurorvq.load: every source kind gives the source model's ids/features; overrides honoured; the state dict checked;
a missing path named first; kind and family mismatches; Hub ids offline against a cache folder built here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import lightning as L
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import neurorvq
from neurorvq import NeuroRVQTokenizer
from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.hub import HubError, HubSource, parse_hub_source
from neurorvq.loading import load, read_lightning_checkpoint
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.models.pretrained import check_state_dict
from neurorvq.registry import MODELS_CHECKPOINT_KEY
from neurorvq.tasks.finetune import backbone_provenance, load_fm
from neurorvq.tasks.pretrain import PretrainTask
from neurorvq.tasks.tokenizer import TokenizerTask, load_tokenizer

TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)
CHANNELS = ["c3", "cz", "c4"]
OFFICIAL_TOKENIZER = "pretrained_models/tokenizers/NeuroRVQ_EEG_tokenizer_v1.pt"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def windows(seed: int = 0) -> torch.Tensor:
    """``[2, 3, 400]``: two 2 s windows of 3 EEG channels at 200 Hz, in µV."""
    return torch.randn(2, 3, 400, generator=torch.Generator().manual_seed(seed)) * 20


def ids(model) -> torch.Tensor:
    return model.eval().tokenize(windows(), CHANNELS).ids


def features(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval().embed(windows(), CHANNELS)[0]


def trainer(root: Path, **kwargs) -> L.Trainer:
    args = dict(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0,
                default_root_dir=root)
    return L.Trainer(**{**args, **kwargs})


def data() -> SyntheticDataModule:
    return SyntheticDataModule(modality="eeg", channels=CHANNELS, window_seconds=2.0, train_windows=8, val_windows=4,
                               test_windows=4, batch_size=4, seed=1)


@pytest.fixture(scope="module")
def tok() -> NeuroRVQTokenizer:
    """A tiny tokenizer whose codebooks were initialised by one training pass (distinct codes, so ids tell
    weights apart)."""
    torch.manual_seed(0)
    model = NeuroRVQTokenizer("eeg", **TINY)
    model.train()(windows(1), CHANNELS)
    return model.eval()


@pytest.fixture(scope="module")
def files(tok, tmp_path_factory) -> dict[str, Path]:
    """The tokenizer as a save_pretrained folder and as official .pt/.bin/.safetensors files."""
    root = tmp_path_factory.mktemp("files")
    official = tok.to_official()
    torch.save(official, root / "tok.pt")
    torch.save({"model": official}, root / "wrapped.bin")
    save_file({k: v.contiguous().clone() for k, v in official.items()}, str(root / "tok.safetensors"))
    return {"folder": tok.save_pretrained(root / "tok"), "pt": root / "tok.pt", "bin": root / "wrapped.bin",
            "safetensors": root / "tok.safetensors"}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict:
    """Real checkpoints of a one-step TokenizerTask fit and a one-step PretrainTask fit (on the first's tokenizer),
    each also without the models block (as neurorvq 0.1 wrote them)."""
    root = tmp_path_factory.mktemp("fits")
    L.seed_everything(0)
    task = TokenizerTask(tokenizer=TINY, lr=1e-3)
    fit = trainer(root / "tok")
    fit.fit(task, data())
    tok_ckpt = root / "tok.ckpt"
    fit.save_checkpoint(tok_ckpt)
    tok_folder = task.tokenizer.save_pretrained(root / "tokenizer")
    pretrain = PretrainTask(str(tok_folder), fm={"depth": 1}, lr=1e-3)
    fit = trainer(root / "fm")
    fit.fit(pretrain, data())
    fm_ckpt = root / "fm.ckpt"
    fit.save_checkpoint(fm_ckpt)
    legacy = {}
    for name, path in (("tok", tok_ckpt), ("fm", fm_ckpt)):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        ckpt.pop(MODELS_CHECKPOINT_KEY, None)
        legacy[name] = root / f"legacy_{name}.ckpt"
        torch.save(ckpt, legacy[name])
    return {"tok": task.tokenizer.eval(), "tok_ckpt": tok_ckpt, "tok_folder": tok_folder, "fm": pretrain.fm.eval(),
            "fm_ckpt": fm_ckpt, "legacy_tok": legacy["tok"], "legacy_fm": legacy["fm"]}


# ------------------------------------------------------------------------------------ every source kind
@pytest.mark.parametrize("source", ["folder", "pt", "bin", "safetensors"])
def test_files_give_the_source_ids(tok, files, source):
    loaded = load(files[source])
    assert isinstance(loaded, NeuroRVQTokenizer)
    assert torch.equal(ids(loaded), ids(tok))
    assert torch.equal(ids(load(str(files[source]), kind="tokenizer", family="neurorvq")), ids(tok))


def test_an_in_memory_state_dict_and_the_package_export(tok):
    assert neurorvq.load is load  # the function, not a module named load
    assert torch.equal(ids(neurorvq.load(tok.to_official())), ids(tok))
    ddp = {f"module.{k}": v for k, v in tok.to_official().items()}  # saved from a DDP wrapper
    assert torch.equal(ids(load(ddp)), ids(tok))


def test_a_model_safetensors_beside_its_config_is_read_as_its_folder(tok, files):
    loaded = load(files["folder"] / "model.safetensors")
    assert loaded.options == tok.options and torch.equal(ids(loaded), ids(tok))


@pytest.mark.parametrize("name", ["tok_ckpt", "legacy_tok"])
def test_a_tokenizer_task_checkpoint_gives_the_trained_ids(fitted, name):
    loaded = load(fitted[name])
    assert isinstance(loaded, NeuroRVQTokenizer) and loaded.spec == fitted["tok"].spec
    assert torch.equal(ids(loaded), ids(fitted["tok"]))
    assert torch.equal(ids(load_tokenizer(str(fitted[name]))), ids(fitted["tok"]))


@pytest.mark.parametrize("name", ["fm_ckpt", "legacy_fm"])
def test_a_pretrain_task_checkpoint_gives_the_trained_features(fitted, name):
    loaded = load(fitted[name])
    assert isinstance(loaded, NeuroRVQFoundationModel) and loaded.spec == fitted["fm"].spec
    assert torch.equal(features(loaded), features(fitted["fm"]))
    assert torch.equal(features(load_fm(str(fitted[name]))), features(fitted["fm"]))


def test_official_fixture_files_are_told_apart_by_their_keys(fixtures_dir):
    fm_file, tok_file = fixtures_dir / "fm_model.safetensors", fixtures_dir / "tokenizer_model.safetensors"
    fm = load(fm_file)
    assert isinstance(fm, NeuroRVQFoundationModel) and fm.options["provenance"] == "official"
    reference = NeuroRVQFoundationModel.from_official(fm_file)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in fm.state_dict().items())
    tok = load(tok_file)
    assert isinstance(tok, NeuroRVQTokenizer)
    assert torch.equal(ids(tok), ids(NeuroRVQTokenizer.from_official(tok_file)))
    with pytest.raises(CheckpointError, match=r"fm_model\.safetensors' holds a foundation_model, not a tokenizer$"):
        load_tokenizer(fm_file)


def test_a_second_family_loads_through_the_same_path(tmp_path):
    from neurorvq.families import get_family

    torch.manual_seed(0)
    toy = get_family("toy_vq").tokenizer_class()("eeg")
    toy.train()(windows(1), CHANNELS)
    folder = toy.save_pretrained(tmp_path / "toy")
    loaded = load(folder, family="toy_vq")
    assert type(loaded) is type(toy) and torch.equal(ids(loaded), ids(toy))
    with pytest.raises(CheckpointError, match=r"toy' is a 'toy_vq' checkpoint, not 'neurorvq'"):
        load(folder, family="neurorvq")
    with pytest.raises(CheckpointError, match=r"toy' is a 'toy_vq' checkpoint, not 'neurorvq'"):
        NeuroRVQTokenizer.from_pretrained(folder)


# ------------------------------------------------------------------------------------ overrides
def test_overrides_are_honoured_for_every_source(fitted, files):
    for source in (fitted["tok_ckpt"], fitted["legacy_tok"], files["folder"], files["pt"]):
        assert load(source, check_inputs=False, dead_code_after=7).options["dead_code_after"] == 7, source
    for source in (fitted["fm_ckpt"], fitted["legacy_fm"]):  # ignored for .ckpt before neurorvq.load
        assert load(source, crop=True).options["crop"] is True, source
        with pytest.raises(CheckpointError, match=r"missing keys \['backbone\.blocks\.1\."):
            load(source, depth=2)


def test_unknown_overrides_are_config_errors_with_did_you_mean(fitted, files):
    for source in (fitted["tok_ckpt"], fitted["legacy_tok"], files["folder"], files["pt"]):
        with pytest.raises(ConfigError, match=r"'codebook_sise'; did you mean 'codebook_size'"):
            load(source, codebook_sise=64)
    with pytest.raises(ConfigError, match=r"'dpth'; did you mean 'depth'"):
        load(fitted["fm_ckpt"], dpth=2)


# ------------------------------------------------------------------------------------ the state-dict check
def test_the_first_mismatching_key_in_checkpoint_order_is_named_with_both_shapes():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    state = {"1.weight": torch.zeros(5, 3), "0.weight": torch.zeros(9, 9), "2.extra": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"^src: '1\.weight' has shape \(5, 3\) but this model expects \(4, 3\)"):
        check_state_dict(model, state, "src")
    fitting = {"1.weight": torch.zeros(4, 3), "2.extra": torch.zeros(1)}  # shapes fit: then the key lists
    with pytest.raises(CheckpointError, match=r"missing keys \['0\.weight', '0\.bias', '1\.bias'\]; unexpected keys "
                                              r"\['2\.extra'\]"):
        check_state_dict(model, fitting, "src")


def test_every_source_checks_its_weights_against_the_overrides(fitted, files):
    shapes = r"'quantizer\.codebooks' has shape \(4, 2, 32, 8\) but this model expects \(4, 2, 64, 8\)"
    for source in (fitted["tok_ckpt"], fitted["legacy_tok"], files["folder"]):
        with pytest.raises(CheckpointError, match=shapes):
            load(source, codebook_size=64)


# ------------------------------------------------------------------------------------ bad input
def test_a_missing_path_says_not_found_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"^checkpoint 'runs/x/last\.ckpt' not found: no such file or folder "
                                              rf"\(relative paths start at {re.escape(str(tmp_path))}\)$"):
        load("runs/x/last.ckpt")
    # owner/name: still a missing path (never guessed to be a Hub id), with the way to name a Hub repo
    for call in (load, load_tokenizer, load_fm):
        with pytest.raises(CheckpointError, match=r"^checkpoint 'me/tok' not found: no such file or folder .*; for a "
                                                  r"Hugging Face Hub repo write hf://me/tok$"):
            call("me/tok")
    absent = re.escape(str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match=rf"checkpoint '{absent}' not found: no such file or folder$"):
        NeuroRVQTokenizer.from_pretrained(tmp_path / "nothing")
    (tmp_path / "last.ckpt.tmp").write_bytes(b"partial")
    with pytest.raises(CheckpointError, match=r"not found.*'last\.ckpt\.tmp' beside it is an interrupted write"):
        load("last.ckpt")


def test_folders_and_files_that_are_not_models(tmp_path):
    run = tmp_path / "runs" / "q"
    (run / "lightning_logs" / "version_0" / "checkpoints").mkdir(parents=True)
    (run / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"q' is a folder without config\.json: not a save_pretrained folder "
                                              r"\(a run folder\? give its checkpoint, e\.g\. '.*version_0/checkpoints/"
                                              r"last\.ckpt'\)"):
        load(run)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"half' has config\.json but lacks model\.safetensors"):
        load(tmp_path / "half")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match=r"notes\.txt' is a \.txt file; neurorvq\.load reads a save_pretrained"):
        load(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="cannot load from a int"):
        load(42)


def test_state_dicts_of_no_known_official_format(tok):
    with pytest.raises(CheckpointError, match=r"not an official state dict of a known family \(looked for neurorvq: "
                                              r"tokenizer encoder\.\*/quantize_1\.\*.*this package's own layout"):
        load(tok.state_dict())
    fm_keys = {"patch_embed.conv1_1.weight": torch.zeros(1), "blocks.0.norm1.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"not an official NeuroRVQ-FM state dict \(missing 'cls_token'\)"):
        load(fm_keys)  # told to be an FM by its keys, then checked by the FM's loader
    with pytest.raises(CheckpointError, match=r"^'the state dict' holds a foundation_model, not a tokenizer$"):
        load(fm_keys, kind="tokenizer")


def test_kind_mismatches(fitted, files):
    with pytest.raises(CheckpointError, match=r"tok\.ckpt' holds a tokenizer, not a foundation_model$"):
        load(fitted["tok_ckpt"], kind="foundation_model")
    with pytest.raises(CheckpointError, match=r"legacy_tok\.ckpt' holds a tokenizer, not a foundation_model$"):
        load_fm(str(fitted["legacy_tok"]))
    with pytest.raises(CheckpointError, match=r"tok' holds a tokenizer, not a foundation_model$"):
        NeuroRVQFoundationModel.from_pretrained(files["folder"])
    with pytest.raises(CheckpointError, match=r"tok\.pt' holds a tokenizer, not a foundation_model$"):
        load(files["pt"], kind="foundation_model")
    with pytest.raises(ConfigError, match=r"kind is 'fm'; valid: tokenizer, foundation_model"):
        load(files["pt"], kind="fm")


def test_a_pretrain_checkpoint_asked_for_its_tokenizer_names_the_tokenizer_file(fitted):
    with pytest.raises(CheckpointError, match=r"is a PretrainTask checkpoint: it does not store its tokenizer's "
                                              r"configuration; load the tokenizer from its own file, '.*tokenizer'"):
        load(fitted["legacy_fm"], kind="tokenizer")


def test_a_finetune_checkpoint_says_what_to_do(tmp_path):
    ckpt = tmp_path / "cls.ckpt"
    torch.save({"state_dict": {"fm.backbone.cls_token": torch.zeros(1, 1, 8), "fm.head.weight": torch.zeros(1, 8)},
                "hyper_parameters": {"fm": "runs/fm/last.ckpt", "num_classes": 2, "fm_overrides": None}}, ckpt)
    with pytest.raises(CheckpointError, match=r"cls\.ckpt' was written by FinetuneTask: .*neurorvq test --config "
                                              r"<recipe> --ckpt_path .*backbone came from 'runs/fm/last\.ckpt'"):
        load(ckpt)


def test_family_mismatches_and_unknown_families(files):
    with pytest.raises(CheckpointError, match=r"tok' is a 'neurorvq' checkpoint, not 'toy_vq'$"):
        load(files["folder"], family="toy_vq")
    with pytest.raises(CheckpointError, match=r"tok\.pt' is a 'neurorvq' checkpoint, not 'toy_vq'$"):
        load(files["pt"], family="toy_vq")
    with pytest.raises(ConfigError, match=r"unknown tokenizer family 'nurorvq'") as error:
        load(files["folder"], family="nurorvq")
    assert "did you mean 'neurorvq'" in str(error.value) and "'toy_vq'" in str(error.value)  # the known ones


def test_modality_must_agree_with_the_stored_signal(fitted):
    with pytest.raises(ConfigError, match=r"holds a 'eeg' model but modality is 'ecg' .*patch_length"):
        load(fitted["tok_ckpt"], modality="ecg")


def test_an_old_checkpoint_naming_an_unregistered_modality_says_how_to_migrate(fitted, tmp_path):
    ckpt = torch.load(fitted["legacy_tok"], map_location="cpu", weights_only=False)
    del ckpt["modality_spec"]
    ckpt["hyper_parameters"]["modality"] = "ppg"
    torch.save(ckpt, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match=r"names modality 'ppg' but stores no spec \(written before neurorvq "
                                              r"0\.2\).*pass modality='ppg\.json'.*save_pretrained"):
        load(tmp_path / "old.ckpt")
    assert torch.equal(ids(load(tmp_path / "old.ckpt", modality="eeg")), ids(fitted["tok"]))


def test_lightning_checkpoints_read_with_the_restricted_unpickler_first(fitted, tmp_path, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert "state_dict" in read_lightning_checkpoint(fitted["tok_ckpt"])
    assert calls == [True]

    ckpt = real(fitted["tok_ckpt"], map_location="cpu", weights_only=False)
    ckpt["extra"] = PurePosixPath("runs/x")  # an object the restricted unpickler refuses
    torch.save(ckpt, tmp_path / "custom.ckpt")
    calls.clear()
    assert read_lightning_checkpoint(tmp_path / "custom.ckpt")["extra"] == PurePosixPath("runs/x")
    assert calls == [True, False]


# ------------------------------------------------------------------------------------ the Hub, offline
def test_hub_sources_parse():
    assert parse_hub_source("hf://me/tok") == HubSource("me/tok")
    assert parse_hub_source("hf://me/tok@v1/sub/f.pt") == HubSource("me/tok", "v1", "sub/f.pt")
    assert parse_hub_source("hf://me/tok@refs%2Fpr%2F1") == HubSource("me/tok", "refs/pr/1")
    assert parse_hub_source("hf://me/tok", revision="v2") == HubSource("me/tok", "v2")
    assert str(HubSource("me/tok", "refs/pr/1", "a.pt")) == "hf://me/tok@refs%2Fpr%2F1/a.pt"
    for bad in ("hf://me", "hf:///tok", "hf://me/tok@", "hf://me/tok//f.pt", "hf://me/../x"):
        with pytest.raises(ConfigError, match=r"is not a Hub source: write hf://owner/name\[@revision\]"):
            parse_hub_source(bad)
    with pytest.raises(ConfigError, match="names revision 'v1' but revision='v2' was passed"):
        parse_hub_source("hf://me/tok@v1", revision="v2")


def test_backbone_provenance_reads_hub_sources():
    assert backbone_provenance("hf://ntinosbarmpas/NeuroRVQ") == "official"
    assert backbone_provenance("hf://ntinosbarmpas/NeuroRVQ@main") == "official"
    assert backbone_provenance("hf://me/fm") == "pretrained"
    assert backbone_provenance("hf://me/fm/sub/model.safetensors") == "pretrained"
    assert backbone_provenance("hf://me/runs/last.ckpt") == "pretrained"
    assert backbone_provenance("hf://me/weights/NeuroRVQ_EEG_foundation_model_v1.pt") == "official"


def test_without_huggingface_hub_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(HubError, match=r"hf://me/tok': reading from the Hugging Face Hub needs huggingface_hub: "
                                       r"pip install 'neurorvq\[hub\]'"):
        load("hf://me/tok")


@pytest.fixture(scope="module")
def hub_cache(tok, tmp_path_factory) -> Path:
    """A Hugging Face cache holding the official repo's tokenizer file (the tiny tokenizer in the official layout)
    and a save_pretrained repo 'me/tok'."""
    cache = tmp_path_factory.mktemp("hub")
    official = cache / "models--ntinosbarmpas--NeuroRVQ"
    (official / "refs").mkdir(parents=True)
    (official / "refs" / "main").write_text(COMMIT)
    target = official / "snapshots" / COMMIT / OFFICIAL_TOKENIZER
    target.parent.mkdir(parents=True)
    torch.save(tok.to_official(), target)
    mine = cache / "models--me--tok"
    (mine / "refs").mkdir(parents=True)
    (mine / "refs" / "main").write_text(COMMIT)
    tok.save_pretrained(mine / "snapshots" / COMMIT)
    return cache


@pytest.fixture
def offline_hub(hub_cache, monkeypatch) -> Path:
    constants = pytest.importorskip("huggingface_hub.constants",
                                    reason="the Hub tests need huggingface_hub (the [hub] / [dev] extra)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    # huggingface_hub reads the variables once, at import: its constants are what downloads consult
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    return hub_cache


def test_hub_ids_offline(tok, offline_hub, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local folder named like the repos
    expected = ids(tok)
    assert torch.equal(ids(load("hf://ntinosbarmpas/NeuroRVQ")), expected)
    assert torch.equal(ids(load("ntinosbarmpas/NeuroRVQ")), expected)  # the documented alias
    assert torch.equal(ids(NeuroRVQTokenizer.from_pretrained("ntinosbarmpas/NeuroRVQ")), expected)  # README
    assert torch.equal(ids(load_tokenizer("ntinosbarmpas/NeuroRVQ")), expected)  # recipes' init_from, the CLI
    assert torch.equal(ids(load(f"hf://ntinosbarmpas/NeuroRVQ@{COMMIT}/{OFFICIAL_TOKENIZER}")), expected)
    saved = load("hf://me/tok")
    assert saved.options == tok.options and torch.equal(ids(saved), expected)
    assert torch.equal(ids(load("hf://me/tok", revision=COMMIT)), expected)
    assert torch.equal(ids(load("hf://me/tok/model.safetensors")), expected)
    assert torch.equal(ids(NeuroRVQTokenizer.from_pretrained("me/tok")), expected)  # bare id: the HF convention
    with pytest.raises(HubError, match=r"'hf://me/missing': 'config\.json' is not in the Hugging Face cache "
                                       r"\(.*\) and offline mode is on \(HF_HUB_OFFLINE=1\)"):
        load("hf://me/missing")
    with pytest.raises(HubError, match=r"'hf://me/missing'.*offline mode.*'me/missing' is no local path either"):
        NeuroRVQTokenizer.from_pretrained("me/missing")
    with pytest.raises(HubError, match=r"'hf://ntinosbarmpas/NeuroRVQ': 'pretrained_models/foundation_models/"
                                       r"NeuroRVQ_EEG_foundation_model_v1\.pt' is not in the Hugging Face cache"):
        load("hf://ntinosbarmpas/NeuroRVQ", kind="foundation_model")
    with pytest.raises(CheckpointError, match=r"official neurorvq repo\) has no tokenizer for modality 'emg'"):
        load("hf://ntinosbarmpas/NeuroRVQ", modality="emg")


def test_hub_ids_offline_in_a_new_process(tok, hub_cache, tmp_path):
    """Only the environment variables: no monkeypatching inside the process that loads."""
    pytest.importorskip("huggingface_hub", reason="the Hub tests need huggingface_hub (the [hub] / [dev] extra)")
    out = tmp_path / "ids.pt"
    code = ("import sys, torch, neurorvq\n"
            "x = torch.randn(2, 3, 400, generator=torch.Generator().manual_seed(0)) * 20\n"
            "ids = [neurorvq.load(s).eval().tokenize(x, ['c3', 'cz', 'c4']).ids for s in sys.argv[2:]]\n"
            "torch.save(ids, sys.argv[1])\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(out), "hf://me/tok", "ntinosbarmpas/NeuroRVQ"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert all(torch.equal(got, ids(tok)) for got in torch.load(out))


def test_a_save_pretrained_config_names_kind_and_family(files):
    config = json.loads((files["folder"] / "config.json").read_text())
    assert (config["kind"], config["family"]) == ("tokenizer", "neurorvq")


def test_a_pretrain_checkpoint_gives_its_frozen_tokenizer_too(fitted):
    tokenizer = load(fitted["fm_ckpt"], kind="tokenizer").eval()
    assert torch.equal(ids(tokenizer), ids(fitted["tok"]))  # the frozen tokenizer the FM was pretrained against
    assert load(fitted["fm_ckpt"]).model_kind == "foundation_model"  # no kind: the FM, the checkpoint's subject


def test_a_finetune_checkpoint_with_its_block_gives_the_fine_tuned_classifier(tmp_path):
    from neurorvq.tasks.finetune import FinetuneTask

    L.seed_everything(0)
    task = FinetuneTask(fm=None, num_classes=3, modality="eeg", fm_overrides={"depth": 1}, pooling="mean")
    x, channels = windows(), ["c3", "cz", "c4"]
    ckpt = tmp_path / "cls.ckpt"
    torch.save({"state_dict": {f"fm.{k}": v for k, v in task.fm.state_dict().items()},
                "hyper_parameters": {"fm": None, "num_classes": 3},
                **{k: v for k, v in _saved_block(task).items()}}, ckpt)
    model = load(ckpt).eval()
    task.fm.eval()
    with torch.no_grad():
        assert torch.equal(model(x, channels), task.fm(x, channels)) and model.num_classes == 3


def _saved_block(task) -> dict:
    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    return checkpoint
