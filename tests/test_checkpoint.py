"""Checkpoint files (tandem/checkpoint.py): atomic writes, safe reads, and refusal of
anything that is not a whole, unedited checkpoint of the one current format."""

from __future__ import annotations

import builtins
import os
import pickle
import random
from pathlib import Path

import pytest
import torch

from tandem import checkpoint
from tandem.errors import CheckpointError


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _ckpt() -> dict:
    return {"model": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)},
            "config": {"name": "x", "lr": 0.5, "sizes": [1, 2, 3], "none": None},
            "fields": {"src_tok": {"kind": "sentencepiece", "model": b"\x00\x01bytes"}}}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_checkpoint_round_trip(tmp_path):
    path = checkpoint.save(_ckpt(), tmp_path / "sub" / "best.pt")
    assert path == tmp_path / "sub" / "best.pt" and path.is_file()
    back = checkpoint.load(str(path))
    assert back["format_version"] == checkpoint.FORMAT_VERSION
    assert torch.equal(back["model"]["w"], _ckpt()["model"]["w"])
    assert back["config"] == _ckpt()["config"]
    assert back["fields"] == _ckpt()["fields"]
    assert _leftovers(path.parent) == []


def test_checkpoint_overwrite(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(_ckpt(), path)
    checkpoint.save({**_ckpt(), "config": {"name": "second"}}, path)
    assert checkpoint.load(path)["config"] == {"name": "second"}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_checkpoint_save_is_atomic(tmp_path, monkeypatch, exc):
    path = checkpoint.save(_ckpt(), tmp_path / "last.pt")
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial checkpoint bytes")
        f.flush()
        raise exc

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(type(exc)):
        checkpoint.save({**_ckpt(), "config": {"name": "new"}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert checkpoint.load(path)["config"] == _ckpt()["config"]
    assert _leftovers(tmp_path) == []


def test_checkpoint_save_fails_before_first_file(tmp_path, monkeypatch):
    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="no space left on device"):
        checkpoint.save(_ckpt(), tmp_path / "best.pt")
    assert list(tmp_path.iterdir()) == []


# garbage is refused by the safe unpickler (as code it will not run) or as no checkpoint
NOT_A_CHECKPOINT = r": (refused: the file needs code to load|not a (readable )?tandem checkpoint)"


def _refused(path: Path, match: str = NOT_A_CHECKPOINT) -> str:
    with pytest.raises(CheckpointError, match=match) as info:
        checkpoint.load(path)
    msg = str(info.value)
    assert str(path) in msg
    return msg


def test_checkpoint_missing(tmp_path):
    _refused(tmp_path / "nope.pt", "not found")
    _refused(tmp_path, "not found")  # a folder is not a checkpoint


def test_checkpoint_wrong_contents(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    _refused(tmp_path / "list.pt", "not a tandem checkpoint")
    torch.save({"format_version": 1}, tmp_path / "nomodel.pt")
    _refused(tmp_path / "nomodel.pt", "not a tandem checkpoint")
    torch.save({"model": {}}, tmp_path / "noversion.pt")
    _refused(tmp_path / "noversion.pt", "not a tandem checkpoint")


def test_checkpoint_wrong_format_version(tmp_path):
    torch.save({"format_version": 99, "model": {}}, tmp_path / "v99.pt")
    _refused(tmp_path / "v99.pt", r"checkpoint format 99 is not supported; this tandem reads "
                                  rf"format {checkpoint.FORMAT_VERSION}$")


def test_a_pre_release_format_1_checkpoint_is_refused(tmp_path):
    """Format 1 (no checksum) predates the 0.1.0 release; it is not read."""
    obj = {**checkpoint.on_cpu(_ckpt()), "format_version": 1}
    torch.save(obj, tmp_path / "v1.pt")
    _refused(tmp_path / "v1.pt", r"checkpoint format 1 is not supported; this tandem reads "
                                 r"format 2$")
    assert checkpoint.FORMAT_VERSION == 2


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.9])
def test_checkpoint_truncated(tmp_path, keep):
    full = checkpoint.save(_ckpt(), tmp_path / "full.pt").read_bytes()
    cut = write(tmp_path / "cut.pt", full[: int(len(full) * keep)])
    _refused(cut)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("seed", [
    0, 1, 3, 4, 5, 6, 7, 8,
    pytest.param(2),
    pytest.param(20),
])
def test_checkpoint_random_bytes(tmp_path, seed):
    data = random.Random(seed).randbytes(64 + seed * 37)
    _refused(write(tmp_path / "random.pt", data))


def test_checkpoint_empty_file(tmp_path):
    _refused(write(tmp_path / "empty.pt", b""))


def test_checkpoint_text_file(tmp_path):
    _refused(write(tmp_path / "notes.pt", "hello world\n"))


def test_checkpoint_yaml_file(tmp_path):
    _refused(write(tmp_path / "config.pt", "name: run\nmodel:\n  cell: gru\n"))


class _WriteFile:
    marker: str = ""

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('x')",))


class _System:
    marker: str = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("cls", [_WriteFile, _System])
@pytest.mark.parametrize("how", ["pickle", "torch"])
def test_checkpoint_malicious_pickle_is_refused(tmp_path, cls, how):
    marker = tmp_path / "pwned"
    evil = cls()
    evil.marker = str(marker)
    payload = {"format_version": 1, "model": evil}
    path = tmp_path / "evil.pt"
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    _refused(path, r"refused: the file needs code to load, which tandem never runs")
    assert not marker.exists()


@pytest.mark.parametrize("cls", [_WriteFile, _System])
def test_malicious_payload_is_live(tmp_path, cls):
    """Control for the test above: unpickled without protection, the payload does run."""
    marker = tmp_path / "pwned"
    evil = cls()
    evil.marker = str(marker)
    pickle.loads(pickle.dumps(evil))  # noqa: S301 - our own payload, on purpose
    assert marker.exists()


def test_checkpoint_error_message_is_one_line(tmp_path):
    full = checkpoint.save(_ckpt(), tmp_path / "full.pt").read_bytes()
    msg = _refused(write(tmp_path / "cut.pt", full[: len(full) // 2]))
    assert "\n" not in msg
