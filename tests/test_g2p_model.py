"""The G2P model shipped in the package (src/tandem/models/g2p_en.pt, built by `make g2p-model`):
small, loads with weights_only=True, its checksum verified and a damaged copy refused; and
`tandem.g2p()` with it equals `tandem g2p`."""

from __future__ import annotations

import json
import shutil

import pytest

import tandem
from tandem import checkpoint
from tandem.cli import main as cli_main
from tandem.errors import CheckpointError
from tandem.pronounce import PACKAGE_MODEL, file_sha256, strip_stress, verified
from test_g2p import ARPABET, _dictionary


def test_the_shipped_model_is_small_loads_safely_and_refuses_a_damaged_copy(tmp_path):
    assert PACKAGE_MODEL.is_file(), "src/tandem/models/g2p_en.pt is missing: make g2p-model"
    assert PACKAGE_MODEL.stat().st_size <= 10_000_000
    card = json.loads(PACKAGE_MODEL.with_suffix(".json").read_text())
    assert card["sha256"] == file_sha256(PACKAGE_MODEL)
    ck = checkpoint.load(verified(PACKAGE_MODEL))  # torch.load(weights_only=True) inside
    assert ck["config"]["data"]["corpus_stress"] is True
    copy = tmp_path / "g2p_en.pt"
    shutil.copy(PACKAGE_MODEL, copy)
    shutil.copy(PACKAGE_MODEL.with_suffix(".json"), tmp_path / "g2p_en.json")
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        verified(copy)


def test_the_python_api_equals_the_cli(capsys):
    words = ["PHOENIX", "tandem", "flibbertigibbetish"]
    api = tandem.g2p(words)
    assert cli_main(["g2p", *words]) == 0
    cli = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    assert api == cli
    assert api[:2] == [_dictionary("phoenix")[0], _dictionary("tandem")[0]]
    assert set(strip_stress(api[2]).split()) <= ARPABET


