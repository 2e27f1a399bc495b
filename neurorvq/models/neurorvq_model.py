"""What NeuroRVQ's tokenizer and foundation model share: their flat record (``spec``), how they persist, and the
signal they accept (the protocol's ``signal``, ``contract``, ``config_hash``, ``to_config``/``from_config``)."""

from __future__ import annotations

from typing import Any, Mapping

from neurorvq.families.neurorvq_spec import NeuroRVQSpec
from neurorvq.registry import ModalitySpec
from neurorvq.tokenizers import SignalContract


class NeuroRVQModelMixin:
    """For a NeuroRVQ model with ``spec`` (:class:`NeuroRVQSpec`) and ``options`` (a dict of model options),
    constructible as ``cls(spec, **options)``."""

    family = "neurorvq"
    spec: NeuroRVQSpec
    options: dict[str, Any]

    def config(self) -> dict[str, Any]:
        """JSON-serialisable configuration: the flat spec plus the model options."""
        return {"spec": self.spec.to_dict(), "options": dict(self.options)}

    def config_hash(self) -> str:
        """Hash of the architecture and signal (the spec's): equal hashes mean interchangeable models."""
        return self.spec.config_hash()

    @property
    def signal(self) -> ModalitySpec:
        """The modality's signal (rate, unit, vocabulary, report bands) this model reads."""
        return self.spec.signal

    @property
    def contract(self) -> SignalContract:
        spec = self.spec
        return SignalContract(spec.name, spec.sampling_rate, spec.unit, spec.patch_length, spec.max_patches,
                              spec.channels, case_sensitive=False, channel_offset=spec.spatial_offset)

    def to_config(self) -> dict[str, Any]:
        """Everything :meth:`from_config` needs (family, the flat spec, the options): JSON."""
        return {"family": self.family, **self.config()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any):
        """A new (untrained) model from :meth:`to_config`'s output or a ``save_pretrained`` config."""
        return cls(NeuroRVQSpec.from_dict(config["spec"]), **{**config.get("options", {}), **overrides})


__all__ = ["NeuroRVQModelMixin"]
