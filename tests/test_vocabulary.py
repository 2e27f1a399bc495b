"""Channel names from files (bytes, numpy strings, numpy integers) decoded to plain names and ids."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from neurorvq.errors import InputError
from neurorvq.vocabulary import decode_channel_name, decode_channel_names


def test_names_and_ids_come_out_plain() -> None:
    given = ["cz", np.str_("Fp1"), b"o2", np.bytes_(b"fz\x00\x00"), b" pz \x00", 3, np.int64(4), np.uint8(5)]
    decoded = decode_channel_names(given)
    assert decoded == ["cz", "Fp1", "o2", "fz", "pz", 3, 4, 5]
    assert [type(v) for v in decoded] == [str] * 5 + [int] * 3


@pytest.mark.parametrize("array, expected", [
    (np.array([b"cz", b"fp1"]), ["cz", "fp1"]),
    (np.array(["cz", "fp1"]), ["cz", "fp1"]),
    (np.array([b"cz", "fp1", 2], dtype=object), ["cz", "fp1", 2]),
    (np.array([3, 4], dtype=np.int32), [3, 4]),
    (np.array([3, 4], dtype=np.uint16), [3, 4]),
])
def test_numpy_arrays_element_wise(array, expected) -> None:
    decoded = decode_channel_names(array)
    assert decoded == expected and all(type(v) in (str, int) for v in decoded)


def test_tensor_is_untouched_and_tuple_becomes_list() -> None:
    ids = torch.tensor([[1, 2], [3, 4]])
    assert decode_channel_names(ids) is ids
    assert decode_channel_names(("cz", b"o2")) == ["cz", "o2"]


@pytest.mark.parametrize("values, message", [
    (["cz", "o2", "fz", 1.0], r"^channels\[3\] is a float \(1\.0\): give a name \(str or bytes\) or an integer id$"),
    ([None], r"^channels\[0\] is None: give a name"),
    ([True], r"^channels\[0\] is a bool \(True\)"),
    ([np.float32(2.0)], r"^channels\[0\] is a float32"),
    ([["cz"]], r"^channels\[0\] is a list \(\['cz'\]\)"),
    ("cz", r"^channels is a single string \('cz'\); give a list of names or ids.*\['cz'\]"),
    (b"cz", r"^channels is a single string \(b'cz'\)"),
    (np.array(b"cz"), r"^channels is a single string"),
    (5, r"^channels is an int \(5\), not a list"),
    (np.array([1.0, 2.0]), r"^channels is an array of float64"),
    (np.array([[b"cz"]]), r"^channels is a 2-D array \(shape \(1, 1\)\).*torch tensor \[batch, channels\]"),
    ([b"cz", b"\xffo2"], r"^channels\[1\] is bytes b'\\xffo2' that are not UTF-8 text.*latin-1"),
])
def test_refusals_name_position_and_type(values, message) -> None:
    with pytest.raises(InputError, match=message):
        decode_channel_names(values)


def test_what_and_where_name_the_input() -> None:
    with pytest.raises(InputError, match=r"^recording channel names\[1\] is None"):
        decode_channel_names(["a", None], "recording channel names")
    with pytest.raises(InputError, match=r"^the electrode is a float"):
        decode_channel_name(1.5, "the electrode")


def test_import_stays_light() -> None:
    code = "import sys, neurorvq.vocabulary; print('numpy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
