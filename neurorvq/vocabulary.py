"""Channel names as they arrive from files: bytes, numpy strings and numpy integers made plain.

``.mat`` and HDF5 readers hand channel names over as ``bytes``/``np.bytes_`` (fixed-width, ``\\x00``-padded) or
as numpy string arrays, and ids as ``np.int64``. :func:`decode_channel_names` turns such a list into plain
``str`` names and ``int`` ids once, at every boundary that takes channel names (the model inputs, the modality
vocabulary, a recording's names, a channel map), so that ``b"cz"``, ``np.str_("cz")`` and ``"cz"`` mean the
same channel everywhere.

This module imports neither numpy nor torch (``import neurorvq`` stays light): an array or a tensor can only
exist once its library has been imported, so the checks look the library up in ``sys.modules``.
"""

from __future__ import annotations

import operator
import sys
from typing import TYPE_CHECKING, Any, Union

from neurorvq.errors import InputError

if TYPE_CHECKING:
    import torch

ChannelName = Union[str, int]
"""A decoded channel: a name (matched case-insensitively by the vocabulary) or an integer vocabulary id."""

_ACCEPTED = "give a name (str or bytes) or an integer id"


def decode_channel_names(values: Any, what: str = "channels") -> list[ChannelName] | torch.Tensor:
    """``values`` as a list of plain ``str`` names and ``int`` ids; a ``torch.Tensor`` (ids) is returned untouched.

    ``values``: a sequence (list, tuple, 1-D numpy array of kind ``U``/``S``/``O``/``i``/``u``) whose entries are
    ``str``/``np.str_`` (as plain ``str``), ``bytes``/``np.bytes_`` (UTF-8, ``\\x00`` padding and surrounding whitespace
    stripped) or ``int``/``np.integer`` (-> ``int``; ``bool`` is refused). ``what`` names ``values`` in messages
    (``"channels"`` -> ``"channels[3] is a float ..."``).

    Raises :class:`~neurorvq.errors.InputError` for a single string or bytes (not a list), an array of another
    kind or of more than one dimension, an entry of another type (naming its position and type), and bytes that
    are not UTF-8 (naming their position and the bytes).
    """
    torch_module = sys.modules.get("torch")
    if torch_module is not None and isinstance(values, torch_module.Tensor):
        return values
    if isinstance(values, (str, bytes)):
        raise InputError(f"{what} is a single string ({values!r}); give a list of names or ids, one per channel, "
                         f"e.g. [{values!r}]")
    numpy_module = sys.modules.get("numpy")
    if numpy_module is not None and isinstance(values, numpy_module.ndarray):
        return _decode_array(values, what)
    try:
        entries = list(values)
    except TypeError:
        raise InputError(f"{what} is {_a(type(values).__name__)} ({values!r}), not a list; give a list of names "
                         "or ids, one per channel") from None
    return [decode_channel_name(value, f"{what}[{i}]") for i, value in enumerate(entries)]


def decode_channel_name(value: Any, where: str = "channel") -> ChannelName:
    """One channel as a plain ``str`` name or ``int`` id (the rules of :func:`decode_channel_names`).

    ``where`` names the entry in messages, e.g. ``"channels[3]"``.
    """
    if isinstance(value, str):
        return value if type(value) is str else str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8").strip("\x00").strip()
        except UnicodeDecodeError as exc:
            raise InputError(f"{where} is bytes {value!r} that are not UTF-8 text (byte {exc.start}); decode the "
                             "names with the file's encoding first, e.g. name.decode('latin-1')") from None
    if not _is_bool(value) and hasattr(type(value), "__index__"):
        try:
            return operator.index(value)
        except TypeError:  # a tensor of another dtype or size: refused below
            pass
    shown = "None" if value is None else f"{_a(type(value).__name__)} ({value!r})"
    raise InputError(f"{where} is {shown}: {_ACCEPTED}")


def _decode_array(values: Any, what: str) -> list[ChannelName]:
    """The entries of a numpy array (see :func:`decode_channel_names`)."""
    if values.ndim == 0:
        return decode_channel_names(values.item(), what)
    if values.ndim != 1:
        raise InputError(f"{what} is a {values.ndim}-D array (shape {values.shape}); give a 1-D list of names or "
                         "ids, or a torch tensor [batch, channels] of ids")
    kind = values.dtype.kind
    if kind in "iu":
        return [int(v) for v in values.tolist()]
    if kind not in "USO":
        raise InputError(f"{what} is an array of {values.dtype}: {_ACCEPTED} per channel")
    return [decode_channel_name(value, f"{what}[{i}]") for i, value in enumerate(values.tolist())]


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: ``"an int"``, ``"a float"``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _is_bool(value: Any) -> bool:
    """``True`` for ``bool``, ``np.bool_`` and a boolean tensor (they have ``__index__`` but are no ids)."""
    dtype = getattr(value, "dtype", None)
    return isinstance(value, bool) or getattr(dtype, "kind", None) == "b" or str(dtype) == "torch.bool"

class ChannelLookups:
    """Look-ups and checks shared by the records that hold a signal: a ``name``, a lower-case vocabulary
    ``channels``, a patch of ``patch_length`` samples at ``sampling_rate`` Hz and report ``bands`` (the modality spec
    and NeuroRVQ's flat record). Subclasses provide ``_fail(field, problem, fix)``."""

    name: str
    channels: tuple[str, ...]
    patch_length: int
    sampling_rate: float
    bands: tuple[tuple[str, float, float], ...]

    def _fail(self, field_name: str, problem: str, fix: str) -> None:
        raise NotImplementedError

    def _validate_signal(self) -> None:
        """Name, rate, patch length and vocabulary (:meth:`_validate_bands` checks the bands)."""
        if not self.name or self.name != self.name.lower() or not self.name.replace("_", "").replace("-", "").isalnum():
            self._fail("name", f"is {self.name!r}", "use a lower-case word such as 'ppg'")
        if self.sampling_rate <= 0:
            self._fail("sampling_rate", f"is {self.sampling_rate}", "give the rate in Hz, > 0")
        if self.patch_length < 1:
            self._fail("patch_length", f"is {self.patch_length}", "it must be a positive integer")
        if not self.channels:
            self._fail("channels", "is empty", "list the channel names of the modality's vocabulary")
        dupes = sorted({c for c in self.channels if self.channels.count(c) > 1})
        if dupes:
            self._fail("channels", f"repeats {dupes} (names match case-insensitively)", "list each channel once")

    def _validate_bands(self) -> None:
        nyquist = self.sampling_rate / 2
        for band_name, low, high in self.bands:
            if not 0 <= low < high <= nyquist:
                self._fail("bands", f"has {band_name}=({low}, {high}) Hz", f"need 0 <= low < high <= {nyquist} Hz")

    @property
    def patch_seconds(self) -> float:
        """Length of one patch [s]."""
        return self.patch_length / self.sampling_rate

    def channel_index(self, name: str) -> int | None:
        """Vocabulary position of ``name`` (case-insensitive), or ``None``."""
        try:
            return self.channels.index(name.strip().lower())
        except ValueError:
            return None

    def closest_channels(self, name: str, n: int = 3) -> list[str]:
        """Vocabulary names closest to ``name``, for error messages."""
        import difflib

        return difflib.get_close_matches(name.strip().lower(), self.channels, n=n, cutoff=0.5)


__all__ = ["ChannelLookups", "ChannelName", "decode_channel_name", "decode_channel_names"]
