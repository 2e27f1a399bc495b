"""The shard-folder rules shared by token and feature folders (and the window cache's version message): a
finished folder has a manifest of its format and a readable version; the same model's files are replaced, another
model's only with overwrite; clearing removes this format's files only, manifest first; manifests are written
atomically and say which neurorvq wrote them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from neurorvq import __version__
from neurorvq.errors import ConfigError, InputError
from neurorvq.shard_folder import FolderFormat, ShardFolder, newer_format_message, writer_version


def part_info(path: Path) -> dict:
    """A toy shard's header: its JSON content."""
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise InputError(f"'{path}' is not a part") from None


def toy_format(**changes) -> FolderFormat:
    fields = dict(name="part folder", format="toy-parts", version=2, readable=(1, 2), shard_pattern="part-*[0-9].json",
                  identity_keys=("model",), fix="write the parts again", contents="parts of another model",
                  shard_info=part_info)
    return FolderFormat(**{**fields, **changes})


def write(folder: Path, name: str, doc) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return folder / name


def test_read_manifest_says_what_is_wrong(tmp_path):
    folder = ShardFolder(tmp_path / "parts", toy_format())
    write(folder.path, "part-00000.json", {"model": "a"})
    with pytest.raises(InputError) as caught:
        folder.read_manifest()
    assert str(caught.value) == (f"'{folder.path}' is not a finished part folder (no manifest.json; an interrupted run "
                                 "leaves shards without a manifest): write the parts again")
    write(folder.path, "manifest.json", {"format": "neurorvq-features", "format_version": 1})
    with pytest.raises(InputError, match=r"is not a part folder manifest \(format 'neurorvq-features', expected "
                                         r"'toy-parts'\)"):
        folder.read_manifest()
    write(folder.path, "manifest.json", {"format": "toy-parts", "format_version": 3, "writer": {"neurorvq": "0.9.1"}})
    with pytest.raises(InputError) as caught:
        folder.read_manifest()
    assert str(caught.value) == (f"part folder '{folder.path}' was written by neurorvq 0.9.1 (format 3); this neurorvq "
                                 "reads formats 1, 2: upgrade neurorvq, or write the parts again")
    write(folder.path, "manifest.json", {"format": "toy-parts", "format_version": 0})
    with pytest.raises(InputError, match=r"part folder '.*' has format 0; this neurorvq reads formats 1, 2: write"):
        folder.read_manifest()
    write(folder.path, "manifest.json", "{not json")
    with pytest.raises(InputError, match="is not readable JSON .*write the parts again"):
        folder.read_manifest()
    write(folder.path, "manifest.json", {"format": "toy-parts", "format_version": 1, "shards": ["part-00000.json"]})
    assert folder.read_manifest()["shards"] == ["part-00000.json"]


def test_manifests_from_before_the_format_key_read_through_legacy(tmp_path):
    old = {"format_version": 1, "shards": ["part-00000.json"]}
    write(tmp_path, "manifest.json", old)
    with pytest.raises(InputError, match="format None"):  # without a legacy rule: not this format
        ShardFolder(tmp_path, toy_format()).read_manifest()
    legacy = toy_format(legacy=lambda doc: isinstance(doc.get("shards"), list))
    assert ShardFolder(tmp_path, legacy).read_manifest() == old
    write(tmp_path, "manifest.json", {"format_version": 3, "shards": []})
    with pytest.raises(InputError, match=r"written by a newer neurorvq \(format 3\)"):
        ShardFolder(tmp_path, legacy).read_manifest()


def test_write_manifest_is_atomic_and_names_format_version_and_writer(tmp_path):
    folder = ShardFolder(tmp_path / "parts", toy_format())
    folder.path.mkdir()
    folder.write_manifest({"model": "a", "shards": []})
    doc = json.loads(folder.manifest_path.read_text())
    assert doc == {"format": "toy-parts", "format_version": 2, "model": "a", "shards": [],
                   "writer": {"neurorvq": __version__}}
    assert writer_version(doc) == __version__ and folder.read_manifest() == doc
    assert sorted(os.listdir(folder.path)) == ["manifest.json"]  # no temporary file left


def test_same_model_is_replaced_another_only_with_overwrite(tmp_path):
    folder = ShardFolder(tmp_path / "parts", toy_format())
    fix = "choose another folder or overwrite"
    assert folder.check_writable({"model": "a"}, False, fix) is False  # does not exist yet
    write(folder.path, "part-00000.json", {"model": "a"})  # an interrupted run: shards, no manifest
    assert folder.check_writable({"model": "a"}, False, fix) is True
    with pytest.raises(ConfigError) as caught:
        folder.check_writable({"model": "b"}, False, fix)
    assert str(caught.value) == (f"'{folder.path}' holds parts of another model (model a; this one: model b); "
                                 "choose another folder or overwrite")
    assert folder.check_writable({"model": "b"}, True, fix) is True
    folder.write_manifest({"model": "a"})
    (folder.path / "part-00000.json").unlink()
    with pytest.raises(ConfigError, match=r"holds parts of another model \(model a; this one: model b\)"):
        folder.check_writable({"model": "b"}, False, fix)
    write(folder.path, "manifest.json", {"format": "other-tool"})
    with pytest.raises(ConfigError, match="holds a manifest.json that is not a part folder manifest; choose"):
        folder.check_writable({"model": "a"}, False, fix)
    (folder.path / "manifest.json").unlink()
    write(folder.path, "part-00001.json", "garbage")
    with pytest.raises(ConfigError, match="holds 'part-00001.json', which is not a readable part folder shard"):
        folder.check_writable({"model": "a"}, False, fix)
    file = write(tmp_path, "a_file", "x")
    with pytest.raises(ConfigError, match="output folder '.*a_file' is a file; give a folder"):
        ShardFolder(file, toy_format()).check_writable({"model": "a"}, True, fix)


def test_foreign_files_ignored_or_refused(tmp_path):
    write(tmp_path / "f", "notes.txt", "mine")
    write(tmp_path / "f", "part-00000.tmp", "interrupted")  # a leftover never blocks, nor makes it ours
    assert ShardFolder(tmp_path / "f", toy_format()).check_writable({"model": "a"}, False, "fix") is False
    refusing = ShardFolder(tmp_path / "f", toy_format(foreign_files="refuse"))
    with pytest.raises(ConfigError) as caught:
        refusing.check_writable({"model": "a"}, False, "choose an empty folder")
    assert str(caught.value) == (f"'{tmp_path / 'f'}' is not empty and is not a part folder (it holds 'notes.txt'); "
                                 "choose an empty folder")
    assert refusing.check_writable({"model": "a"}, True, "fix") is False
    write(tmp_path / "f", "part-00000.json", {"model": "a"})  # once it is a part folder, other files may stay
    assert refusing.check_writable({"model": "a"}, False, "fix") is True


def test_clear_removes_only_this_formats_files_manifest_first(tmp_path, monkeypatch):
    folder = ShardFolder(tmp_path / "parts", toy_format())
    ours = ["manifest.json", "part-00000.json", "part-rank001-00003.json", "part-00001.tmp", "part-00002.json.partial",
            ".manifest.json.123.tmp", "manifest.json.tmp"]
    theirs = ["notes.txt", "part-notes.json", "other.tmp", "manifest.yaml"]
    for name in ours + theirs:
        write(folder.path, name, "{}")
    (folder.path / "sub").mkdir()
    assert sorted(p.name for p in folder.leftovers()) == sorted(
        [".manifest.json.123.tmp", "manifest.json.tmp", "part-00001.tmp", "part-00002.json.partial"])
    assert [p.name for p in folder.shards()] == ["part-00000.json", "part-rank001-00003.json"]
    removed = []
    unlink = Path.unlink
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (removed.append(self.name),
                                                                         unlink(self, missing_ok=missing_ok)))
    folder.clear()
    assert removed[0] == "manifest.json" and sorted(removed) == sorted(ours)
    assert sorted(os.listdir(folder.path)) == sorted(theirs + ["sub"])


def test_the_window_cache_says_which_neurorvq_wrote_a_newer_index():
    from neurorvq.data.cache.index import FORMAT, CacheError, CacheIndex

    doc = {"format": FORMAT, "format_version": 3, "writer": {"webdataset": "1.0", "neurorvq": "0.5.0"}}
    with pytest.raises(CacheError) as caught:
        CacheIndex.from_json("runs/cache/abc", doc)
    assert str(caught.value) == ("window cache 'runs/cache/abc' was written by neurorvq 0.5.0 (format 3); this "
                                 "neurorvq reads formats 1, 2: upgrade neurorvq, or delete the folder and run again "
                                 "to rebuild it")
    with pytest.raises(CacheError, match=r"window cache 'c' was written by a newer neurorvq \(format 3\)"):
        CacheIndex.from_json("c", {**doc, "writer": {"webdataset": "1.0"}})
    with pytest.raises(CacheError, match="is format 'something-else' version 3"):  # not a window cache at all
        CacheIndex.from_json("c", {**doc, "format": "something-else"})
    assert newer_format_message("x", "d", {"format_version": 9, "neurorvq_version": "1.0"}, (1,), "fix it") == (
        "x 'd' was written by neurorvq 1.0 (format 9); this neurorvq reads formats 1: upgrade neurorvq, or fix it")


def test_a_format_must_read_what_it_writes():
    with pytest.raises(ConfigError, match="version 3 is not among readable"):
        toy_format(version=3)
    with pytest.raises(ConfigError, match="foreign_files is 'delete'"):
        toy_format(foreign_files="delete")
