"""neurorvq: NeuroRVQ biosignal tokenizers and foundation models on PyTorch Lightning."""

from neurorvq.errors import CheckpointError, ConfigError, InputError, NeuroRVQError
from neurorvq.registry import ModalitySpec, TemporalBranch, get_modality, list_modalities, register_modality

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ConfigError", "InputError", "NeuroRVQError",
    "ModalitySpec", "TemporalBranch", "get_modality", "list_modalities", "register_modality",
    "NeuroRVQTokenizer", "AmplitudeStats", "NeuroRVQFoundationModel", "NeuroRVQConfig", "NeuroRVQSpec",
    "TokenLayout", "SideField", "Encoded", "SignalContract", "Tokenizer", "FoundationModel", "load",
]

_PROTOCOL = ("TokenLayout", "SideField", "Encoded", "SignalContract", "Tokenizer", "FoundationModel")


def __getattr__(name: str):  # models import torch; keep `import neurorvq` light for the registry
    if name in ("NeuroRVQTokenizer", "AmplitudeStats"):
        from neurorvq.models import tokenizer

        return getattr(tokenizer, name)
    if name in _PROTOCOL:
        from neurorvq import tokenizers

        return getattr(tokenizers, name)
    if name == "NeuroRVQConfig":
        from neurorvq.families.neurorvq import NeuroRVQConfig

        return NeuroRVQConfig
    if name == "NeuroRVQSpec":
        from neurorvq.families.neurorvq_spec import NeuroRVQSpec

        return NeuroRVQSpec
    if name == "load":  # the function; its module is neurorvq.loading (a submodule 'load' would shadow it)
        from neurorvq.loading import load

        return load
    if name == "NeuroRVQFoundationModel":
        from neurorvq.models.fm import NeuroRVQFoundationModel

        return NeuroRVQFoundationModel
    raise AttributeError(f"module 'neurorvq' has no attribute {name!r}")
