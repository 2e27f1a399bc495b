"""One loader for every model source: :func:`load`.

Sources, told apart in this order:

1. a ``Mapping``: an official-layout state dict in memory;
2. ``hf://owner/name[@revision][/path/in/repo]`` (:mod:`neurorvq.hub`), or the bare official repo id
   ``ntinosbarmpas/NeuroRVQ`` (the documented alias) when no such local path exists. No other text with a "/" is
   taken for a Hub repo;
3. a local path that does not exist: "not found", first, whatever the text looks like;
4. a folder: ``save_pretrained`` (``config.json`` + ``model.safetensors``);
5. a file: ``.ckpt`` (a Lightning checkpoint written by ``neurorvq fit``), ``.pt``/``.pth``/``.bin``/
   ``.safetensors`` (an official state dict; a ``model.safetensors`` beside a ``config.json`` is its folder).

Every source is built with the ``overrides`` (unknown keys raise :class:`ConfigError` with did-you-mean, from the
model's constructor), and its weights are checked against the built model (:func:`check_state_dict`: the first key
whose shape differs, with both shapes, then missing/unexpected keys) before they are loaded.

Families: a checkpoint names its family (``config.json``'s and the Lightning block's ``"family"``; files written
before families existed are NeuroRVQ's); the model class comes from the family registry
(:func:`neurorvq.families.get_family`: ``tokenizer`` / ``foundation_model``), which builds it with the classmethod
``from_config(config, **overrides)``. A family with official checkpoints adds one :class:`OfficialFormat` entry to
:data:`OFFICIAL_FORMATS` (how its state dicts are recognised, its Hub repo and files); its classes then provide
``from_official(path_or_state_dict, modality, **overrides)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

import torch

from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.file_io import (TEMP_SUFFIX, checkpoint_read_error, read_lightning_checkpoint, torch_load,
                              unfinished_write)
from neurorvq.hub import HUB_SCHEME, OFFICIAL_REPO_ID, HubSource, hub_download, looks_like_repo_id, parse_hub_source
from neurorvq.models.pretrained import (CONFIG_NAME, OFFICIAL_FILES, WEIGHTS_NAME, check_state_dict,
                                        read_state_dict, unwrap_state_dict, without_ddp_prefix)
from neurorvq.registry import (MODELS_CHECKPOINT_KEY, checkpoint_modality, get_modality, is_spec_file,
                               registered_modality)
from neurorvq.suggest import did_you_mean

KINDS = ("tokenizer", "foundation_model")
"""What a checkpoint can hold; ``kind=`` picks one."""
LEGACY_FAMILY = "neurorvq"
"""The family of files that name none (written before families existed: neurorvq 0.1)."""
OFFICIAL_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
LIGHTNING_FORMAT = 2
"""The newest version of the models block (:data:`~neurorvq.registry.MODELS_CHECKPOINT_KEY`) this loader reads."""


@dataclass(frozen=True)
class OfficialFormat:
    """How a family's official checkpoints are recognised and found.

    markers: per kind, keys its state dict holds (a name ending in "." stands for any key under it); every marker of
    a kind must be present. A kind with several official layouts gives a tuple of such tuples, one per layout (any
    one matching is enough). repo: the family's official Hub repo, where ``files[(kind, modality)]`` is the file
    ``hf://<repo>`` resolves to.
    """

    markers: Mapping[str, tuple[str, ...] | tuple[tuple[str, ...], ...]]
    repo: str | None = None
    files: Mapping[tuple[str, str], str] = field(default_factory=dict)
    shares: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per kind, families whose official layout is also this family's (BrainRVQ's fine-tuned student has LaBraM's
    keys): such a file is detected as theirs, and loads as this family when the caller asks for it."""

    def detect(self, keys: set[str]) -> str | None:
        """The kind whose markers (of one of its layouts) ``keys`` all hold, or None."""
        for kind, markers in self.markers.items():
            layouts = markers if markers and isinstance(markers[0], tuple) else (markers,)
            for layout in layouts:
                if all(any(k.startswith(m) for k in keys) if m.endswith(".") else m in keys for m in layout):
                    return kind
        return None


OFFICIAL_FORMATS: dict[str, OfficialFormat] = {
    "neurorvq": OfficialFormat(
        markers={"tokenizer": ("encoder.", "quantize_1."),
                 "foundation_model": ("patch_embed.conv1_1.weight", "blocks.0.")},
        repo=OFFICIAL_REPO_ID, files=OFFICIAL_FILES),
    # BrainRVQ's DD-RVQ (DDRVQ/modeling_ddrvq.DDRVQ) and its pretraining model
    # (Pretraining/modeling_pretrain.NeuralTransformerForMEM_Autoregressive); no weights are published. Before
    # LaBraM's entry: a BrainRVQ pretraining file also holds LaBraM's student markers
    "brainrvq": OfficialFormat(
        markers={"tokenizer": ("encoder.patch_embed.conv1.weight", "quantize_t.", "quantize_f.",
                               "decode_task_layer_time."),
                 "foundation_model": ("student.patch_embed.conv1.weight", "lm_heads_t.", "token_embed_t.")},
        shares={"foundation_model": ("labram_vqnsp",)}),
    # LaBraM's VQ-NSP (modeling_vqnsp.VQNSP) and its student (modeling_pretrain.NeuralTransformerForMEM, e.g.
    # labram-base.pth, or a fine-tuned modeling_finetune.NeuralTransformer); weights in the LaBraM repo, not the Hub
    "labram_vqnsp": OfficialFormat(
        markers={"tokenizer": ("encoder.patch_embed.conv1.weight", "quantize.embedding.weight",
                               "decode_task_layer_angle."),
                 "foundation_model": (("student.patch_embed.conv1.weight", "student.blocks.0.attn.q_norm.weight"),
                                      ("patch_embed.conv1.weight", "blocks.0.attn.q_norm.weight"))}),
}
"""Family name -> its official checkpoint format (families without official checkpoints have no entry); the first
entry whose markers match names a state dict's family."""


def official_family(state_or_source: Mapping[str, Any] | str | os.PathLike) -> tuple[str, str] | None:
    """``(family, kind)`` of an official-layout state dict (in memory or a file, whose keys alone are read), by
    :data:`OFFICIAL_FORMATS`' markers; ``None`` when no family's markers match."""
    source = state_or_source if isinstance(state_or_source, Mapping) else Path(os.fspath(state_or_source))
    try:
        keys = set(_official_keys(source))
    except Exception:  # unreadable: the loader that reads the tensors says why, naming the file
        return None
    for name, fmt in OFFICIAL_FORMATS.items():
        kind = fmt.detect(keys)
        if kind is not None:
            return name, kind
    return None


def refuse_other_family(state_or_source: Mapping[str, Any] | str | os.PathLike, label: str, expected: str) -> None:
    """Raise one :class:`CheckpointError` naming both families when ``state_or_source`` is another family's official
    state dict (``"'x.pth' is an official 'brainrvq' tokenizer, not a 'labram_vqnsp' one: load it with neurorvq.load
    or BrainRVQTokenizer.from_official"``); ``label`` names the source."""
    found = official_family(state_or_source)
    if found is None or found[0] == expected:
        return
    family, kind = found
    path = getattr(_family(family), kind, None)
    loader = f" or {path.rpartition(':')[2]}.from_official" if path else ""
    raise CheckpointError(f"{label} is an official '{family}' {kind.replace('_', ' ')}, not a '{expected}' one: load "
                          f"it with neurorvq.load{loader}")


@dataclass(frozen=True)
class _Request:
    """What the caller asked for (``None`` = anything)."""

    kind: str | None
    family: str | None
    modality: Any
    overrides: dict[str, Any]


def load(source: str | os.PathLike | Mapping[str, torch.Tensor], *, kind: str | None = None,
         family: str | None = None, modality: Any = None, revision: str | None = None, **overrides: Any) -> Any:
    """A tokenizer or foundation model, with its weights, from ``source``.

    Args:
        source: a ``save_pretrained`` folder; a Lightning ``.ckpt`` written by ``neurorvq fit`` (TokenizerTask: its
            tokenizer; PretrainTask: its foundation model); an official ``.pt``/``.pth``/``.bin``/``.safetensors``
            state dict, or one in memory (a ``Mapping``); ``hf://owner/name[@revision][/path/in/repo]``
            (a ``save_pretrained`` repo, one file of a repo, or the official repo, whose file is picked by ``kind``
            and ``modality``), and the bare official id ``ntinosbarmpas/NeuroRVQ``.
        kind: ``"tokenizer"`` or ``"foundation_model"``: what the source must hold (a clear error otherwise).
        family: the family the source must be (``"neurorvq"``, ...): a clear error otherwise.
        modality: the signal (a registered name, a spec file or a ``ModalitySpec``) for sources that do not store
            it (official state dicts, checkpoints written before the spec was stored); for the others, it must
            agree with the stored signal (rate, unit, patch length).
        revision: a Hub branch, tag or commit (``hf://`` sources only).
        **overrides: the model's fields and options to change (e.g. ``check_inputs=False``; architecture fields
            must agree with the stored weights).

    Returns the model (an ``nn.Module`` satisfying :class:`~neurorvq.tokenizers.Tokenizer` or
    :class:`~neurorvq.tokenizers.FoundationModel`) in training mode, as built; call ``.eval()`` to use it.
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind is {kind!r}{did_you_mean(str(kind), KINDS)}; valid: {', '.join(KINDS)}")
    if family is not None:
        family = _family(family).name  # an unknown name lists the known ones
    request = _Request(kind, family, modality, dict(overrides))
    if isinstance(source, Mapping):
        if revision is not None:
            raise ConfigError("revision= applies to Hub sources (hf://owner/name) only, not to a state dict")
        return _from_official(dict(source), "the state dict", request)
    if isinstance(source, bytes):
        source = os.fsdecode(source)
    if not isinstance(source, (str, os.PathLike)):
        raise CheckpointError(f"cannot load from a {type(source).__name__}: give a save_pretrained folder, a .ckpt, "
                              "an official .pt/.safetensors file, hf://owner/name or a state dict")
    text = os.fspath(source)
    if text.startswith(HUB_SCHEME):
        return _from_hub(parse_hub_source(text, revision), request)
    if text == OFFICIAL_REPO_ID and not Path(text).exists():
        return _from_hub(HubSource(OFFICIAL_REPO_ID, revision), request)
    if revision is not None:
        raise ConfigError(f"revision='{revision}' applies to Hub sources only; '{text}' is a local path (for a Hub "
                          f"repo write {HUB_SCHEME}owner/name)")
    return _from_path(Path(text), text, request)


# ------------------------------------------------------------------------------------ sources
def _from_path(path: Path, label: str, request: _Request) -> Any:
    """A local file or folder; ``label`` names the source in messages."""
    if not path.exists():
        raise CheckpointError(_not_found(path, label))
    if path.is_dir():
        return _from_folder(path, label, request)
    if unfinished_write(path):
        raise checkpoint_read_error(path, ValueError("an unfinished write"))
    suffix = path.suffix.lower()
    if suffix == ".ckpt":
        return _from_lightning(path, label, request)
    if path.name in (CONFIG_NAME, WEIGHTS_NAME) and (path.parent / CONFIG_NAME).is_file():
        return _from_folder(path.parent, str(PurePosixPath(label).parent), request)
    if suffix in OFFICIAL_SUFFIXES:
        return _from_official(path, label, request)
    raise CheckpointError(f"'{label}' is a {suffix or 'suffix-less'} file; neurorvq.load reads a save_pretrained "
                          "folder, a Lightning .ckpt, an official state dict (.pt, .pth, .bin, .safetensors) or "
                          f"{HUB_SCHEME}owner/name")


def _not_found(path: Path, label: str) -> str:
    message = f"checkpoint '{label}' not found: no such file or folder"
    if not path.is_absolute():
        message += f" (relative paths start at {Path.cwd()})"
    if path.with_name(path.name + TEMP_SUFFIX).is_file():
        message += (f"; '{path.name + TEMP_SUFFIX}' beside it is an interrupted write of it (a killed run or a full "
                    "disk), not a usable checkpoint: use an earlier one")
    if looks_like_repo_id(label):
        message += f"; for a Hugging Face Hub repo write {HUB_SCHEME}{label}"
    return message


def _from_hub(source: HubSource, request: _Request) -> Any:
    label = str(source)
    if source.path:
        name = PurePosixPath(source.path)
        if name.name in (CONFIG_NAME, WEIGHTS_NAME):  # a save_pretrained folder inside the repo
            folder = name.parent
            return _hub_folder(source, "" if str(folder) == "." else f"{folder}/", label, request)
        return _from_path(hub_download(source, source.path), label, request)
    for family_name, official in OFFICIAL_FORMATS.items():
        if official.repo == source.repo_id:
            kind = request.kind or "tokenizer"
            modality = request.modality if request.modality is not None else "eeg"
            modality = str(getattr(modality, "name", modality))
            filename = official.files.get((kind, modality))
            if filename is None:
                raise CheckpointError(f"'{label}' (the official {family_name} repo) has no {kind} for modality "
                                      f"'{modality}'; it has: {sorted(official.files)}")
            return _from_path(hub_download(source, filename), f"{label}/{filename}", request)
    return _hub_folder(source, "", label, request)


def _hub_folder(source: HubSource, prefix: str, label: str, request: _Request) -> Any:
    """A ``save_pretrained`` folder at ``prefix`` (``""`` = the root) of a Hub repo."""
    config = hub_download(source, prefix + CONFIG_NAME)
    weights = hub_download(source, prefix + WEIGHTS_NAME)
    if weights.parent != config.parent:  # the cache keeps one snapshot folder per commit: both land in it
        raise CheckpointError(f"'{label}': {CONFIG_NAME} and {WEIGHTS_NAME} came from different revisions")
    return _from_folder(config.parent, label, request)


def _from_folder(folder: Path, label: str, request: _Request) -> Any:
    """A ``save_pretrained`` folder: ``config.json`` (``kind``, ``family``, the family's config) and
    ``model.safetensors``."""
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_file.is_file():
        runs = _run_checkpoints(folder)
        hint = (f" (a run folder? give its checkpoint, e.g. '{runs[0]}')" if runs else
                f" (it must hold {CONFIG_NAME} and {WEIGHTS_NAME} written by save_pretrained)")
        raise CheckpointError(f"'{label}' is a folder without {CONFIG_NAME}: not a save_pretrained folder{hint}")
    if not weights_file.is_file():
        raise CheckpointError(f"'{label}' has {CONFIG_NAME} but lacks {WEIGHTS_NAME}; a save_pretrained folder holds "
                              "both (an interrupted save? write it again with save_pretrained)")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"'{config_file}' cannot be read as JSON ({error}): the file is damaged; write the "
                              "folder again with save_pretrained or use another copy") from None
    if not isinstance(config, dict) or config.get("kind") not in KINDS:
        found = config.get("kind") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"'{config_file}' names kind {found!r}; a save_pretrained config.json names one of "
                              f"{list(KINDS)} (not written by save_pretrained?)")
    family = str(config.get("family", LEGACY_FAMILY))
    _check(label, config["kind"], family, request)
    model = _model_class(family, config["kind"], label).from_config(config, **request.overrides)
    return _finish(model, read_state_dict(weights_file), str(weights_file), request)


def _run_checkpoints(folder: Path) -> list[Path]:
    """``last.ckpt`` files of a Lightning run folder (the folder itself, a version folder or ``default_root_dir``)."""
    found: list[Path] = []
    for pattern in ("checkpoints/last.ckpt", "*/checkpoints/last.ckpt", "lightning_logs/*/checkpoints/last.ckpt"):
        found += sorted(folder.glob(pattern))
    return found


def _from_lightning(path: Path, label: str, request: _Request) -> Any:
    """A Lightning checkpoint: the models block tasks write (format 2), else the layout of neurorvq 0.1's tasks."""
    ckpt = read_lightning_checkpoint(path)
    state = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"'{label}' holds no 'state_dict': not a Lightning checkpoint written by neurorvq fit")
    block = ckpt.get(MODELS_CHECKPOINT_KEY)
    if isinstance(block, Mapping) and isinstance(block.get("models"), Mapping):
        return _from_models_block(block, state, label, request)
    return _from_legacy_lightning(ckpt, state, label, request)


def _from_models_block(block: Mapping[str, Any], state: Mapping[str, torch.Tensor], label: str,
                       request: _Request) -> Any:
    """``{"format": 2, "models": {role: {"kind", "prefix", "family", ...its config}}}``."""
    version = int(block.get("format", LIGHTNING_FORMAT))
    if version > LIGHTNING_FORMAT:
        raise CheckpointError(f"'{label}' was written by a newer neurorvq (checkpoint format {version}; this one reads "
                              f"up to {LIGHTNING_FORMAT}): upgrade neurorvq")
    models = dict(block["models"])
    matching = {role: entry for role, entry in models.items() if request.kind in (None, entry.get("kind"))}
    if not matching:
        held = " and a ".join(str(entry.get("kind")) for entry in models.values()) or "no model"
        raise CheckpointError(f"'{label}' holds a {held}, not a {request.kind}")
    if len(matching) > 1:  # a task holding two models (pretraining: the FM it trains, the frozen tokenizer)
        matching = {role: e for role, e in matching.items() if e.get("kind") == "foundation_model"} or matching
    if len(matching) > 1:
        raise CheckpointError(f"'{label}' holds several models ({sorted(matching)}): pass kind=")
    role, entry = next(iter(matching.items()))
    family = str(entry.get("family", LEGACY_FAMILY))
    _check(label, str(entry.get("kind")), family, request)
    model = _model_class(family, str(entry["kind"]), label).from_config(entry, **request.overrides)
    prefix = str(entry.get("prefix", f"{role}."))
    return _finish(model, _strip(state, prefix), label, request)


def _from_legacy_lightning(ckpt: Mapping[str, Any], state: Mapping[str, torch.Tensor], label: str,
                           request: _Request) -> Any:
    """Checkpoints of TokenizerTask and PretrainTask without the models block (neurorvq 0.1): NeuroRVQ's, built
    from the stored spec (or the ``modality`` hyper-parameter) and the task's model hyper-parameters."""
    hparams = dict(ckpt.get("hyper_parameters") or {})
    has_fm = any(k.startswith("fm.") for k in state)
    if has_fm and ("num_classes" in hparams or "fm_overrides" in hparams):
        raise CheckpointError(
            f"'{label}' was written by FinetuneTask: it holds a fine-tuned classifier, which neurorvq.load does not "
            f"rebuild; evaluate it with its recipe (neurorvq test --config <recipe> --ckpt_path {label}). Its "
            f"backbone came from {hparams.get('fm')!r}")
    if has_fm and "fm.head_bias" not in state:
        raise CheckpointError(f"'{label}' holds 'fm.' weights without pretraining heads: not a PretrainTask checkpoint")
    if has_fm:
        found = "foundation_model"
        if request.kind == "tokenizer":
            raise CheckpointError(
                f"'{label}' is a PretrainTask checkpoint: it does not store its tokenizer's configuration; load the "
                f"tokenizer from its own file, {hparams.get('tokenizer')!r} (the run's 'tokenizer' hyper-parameter)")
    elif any(k.startswith("tokenizer.") for k in state):
        found = "tokenizer"
    else:
        raise CheckpointError(f"'{label}' is a Lightning checkpoint of neither TokenizerTask nor PretrainTask (no "
                              "'tokenizer.' or 'fm.' weights); evaluate it with its recipe (neurorvq test "
                              f"--config <recipe> --ckpt_path {label})")
    _check(label, found, LEGACY_FAMILY, request)
    spec = _legacy_signal(ckpt, hparams, label, request)
    cls = _model_class(LEGACY_FAMILY, found, label)
    if found == "tokenizer":
        options = _hparam_dict(hparams, "tokenizer", label)
        model = cls(spec, **{**options, **request.overrides})
        return _finish(model, _strip(state, "tokenizer."), label, request)
    weights = _strip(state, "fm.")
    heads = weights["head_bias"]  # [S, N, V]: the token heads fix the RVQ depth and the vocabulary
    options = {"pretraining": True, "vocab_size": int(heads.shape[-1]), "n_quantizers": int(heads.shape[1]),
               **_hparam_dict(hparams, "fm", label), **request.overrides}
    return _finish(cls(spec, **options), weights, label, request)


def _legacy_signal(ckpt: Mapping[str, Any], hparams: Mapping[str, Any], label: str, request: _Request) -> Any:
    """The stored flat spec, else ``modality=``, else the ``modality`` hyper-parameter when it can be resolved."""
    found = checkpoint_modality(ckpt)
    if found is not None and not isinstance(found, (str, os.PathLike)):
        return found  # the stored spec: no registry look-up
    if request.modality is not None:
        return request.modality
    if found is None:
        raise CheckpointError(f"'{label}' stores neither its modality spec nor a 'modality' hyper-parameter: pass "
                              "modality= (the modality it was trained on)")
    resolvable = Path(found).is_file() if is_spec_file(found) else registered_modality(str(found)) is not None
    if not resolvable:
        stem = Path(str(found)).stem
        raise CheckpointError(f"checkpoint '{label}' names modality '{found}' but stores no spec (written before "
                              f"neurorvq 0.2) and '{found}' is not registered here: pass modality='{stem}.json' (its "
                              "spec file) or register it, then re-save it with "
                              "neurorvq.load(...).save_pretrained(folder)")
    return found


def _hparam_dict(hparams: Mapping[str, Any], key: str, label: str) -> dict[str, Any]:
    """The model overrides a task stored under ``key``: a plain mapping (neurorvq 0.1) or typed options
    (``{"class_path", "init_args"}``: the fields that are set)."""
    value = hparams.get(key) or {}
    if not isinstance(value, Mapping):
        raise CheckpointError(f"'{label}': hyper-parameter '{key}' is {value!r}, not the model's overrides")
    if "class_path" in value:
        return {k: v for k, v in dict(value.get("init_args") or {}).items() if v is not None}
    return dict(value)


def _from_official(source: Path | dict[str, torch.Tensor], label: str, request: _Request) -> Any:
    """An official-layout state dict (a file or in memory), its family and kind told by its keys."""
    keys = set(_official_keys(source))
    found = [(name, fmt.detect(keys)) for name, fmt in OFFICIAL_FORMATS.items()]
    found = [(name, kind) for name, kind in found if kind is not None]
    if not found:
        known = "; ".join(f"{name}: " + ", ".join(f"{kind} {_marker_text(ms)}" for kind, ms in fmt.markers.items())
                          for name, fmt in OFFICIAL_FORMATS.items())
        ours = any(k.startswith(("temporal.", "quantizer.", "backbone.")) for k in keys)
        hint = ("; its keys are this package's own layout (model.state_dict()): load them into a model built with the "
                "same configuration (load_state_dict), or save that model with save_pretrained and load the folder"
                if ours else "")
        raise CheckpointError(f"'{label}' is not an official state dict of a known family (looked for {known}){hint}")
    family, kind = found[0]
    asked = OFFICIAL_FORMATS.get(request.family or "")
    if asked is not None and family in asked.shares.get(kind, ()):  # the same keys: the caller's family decides
        family = request.family
    _check(label, kind, family, request)
    cls = _model_class(family, kind, label)
    return cls.from_official(source, request.modality, **request.overrides)


def _marker_text(markers: tuple) -> str:
    """``a/b*`` for one layout's markers, ``a/b* or c/d`` for several."""
    layouts = markers if markers and isinstance(markers[0], tuple) else (markers,)
    return " or ".join("/".join(m + "*" if m.endswith(".") else m for m in layout) for layout in layouts)


def _official_keys(source: Path | Mapping[str, Any]) -> list[str]:
    """The keys of an official state dict, without reading its tensors where the format allows."""
    if isinstance(source, Mapping):
        keys = list(source)
    elif source.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(source), framework="pt") as handle:
                keys = list(handle.keys())
        except Exception:  # damaged: read_state_dict gives the one message that names the file
            keys = list(read_state_dict(source))
    else:
        keys = list(unwrap_state_dict(torch_load(source, weights_only=True, mmap=True), str(source)))
    return list(without_ddp_prefix(dict.fromkeys(keys)))  # saved from a DDP wrapper: no "module." prefix


# ------------------------------------------------------------------------------------ helpers
def _family(name: str) -> Any:
    from neurorvq.families import get_family

    return get_family(name)


def _model_class(family: str, kind: str, label: str) -> type:
    """The class of ``family`` for ``kind`` (the family registry's ``tokenizer`` / ``foundation_model``)."""
    record = _family(family)
    if getattr(record, kind, None) is None:
        raise CheckpointError(f"'{label}' holds a {kind} of family '{family}', which has no {kind} class")
    return getattr(record, f"{kind}_class")()


def _check(label: str, kind: str, family: str, request: _Request) -> None:
    """Refuse a source holding another kind or family than the one asked for."""
    if request.kind is not None and kind != request.kind:
        raise CheckpointError(f"'{label}' holds a {kind}, not a {request.kind}")
    if request.family is not None and family != request.family:
        raise CheckpointError(f"'{label}' is a '{family}' checkpoint, not '{request.family}'")


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _finish(model: Any, state: Mapping[str, torch.Tensor], label: str, request: _Request) -> Any:
    """Check and load ``state`` into ``model``; check ``modality=`` against the stored signal."""
    check_state_dict(model, state, label)
    model.load_state_dict(state)
    if request.modality is not None:
        from neurorvq.compat import SIGNAL_FIELDS, check_compatible

        signal = request.modality if hasattr(request.modality, "sampling_rate") else get_modality(request.modality)
        check_compatible(signal, model, fields=SIGNAL_FIELDS,
                         headline=f"'{label}' holds a '{model.contract.name}' model but modality is '{signal.name}' "
                                  "(modality vs model)")
    return model


__all__ = ["KINDS", "LEGACY_FAMILY", "OFFICIAL_FORMATS", "OfficialFormat", "load", "official_family",
           "read_lightning_checkpoint", "refuse_other_family"]
