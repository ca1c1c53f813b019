"""Reversed reading/writing (data.reverse_source / data.reverse_target): the model sees the
reversed sequences, the user never does."""

import dataclasses

import pytest
import torch

from tandem.config import DataConfig, from_dict
from tandem.data.dataset import build_fields, encode_pairs
from tandem.data.fields import Fields
from tandem.errors import CheckpointError
from tandem.structures.translator import Translator, load
from tandem.train.trainer import train


def _fields(**flags) -> Fields:
    return build_fields(DataConfig(**flags), [("abc", "xyz"), ("ca", "zy")])


@pytest.mark.pins("data.reverse_source", "data.reverse_target")
def test_fields_reverse_what_the_model_sees_and_restore_reading_order():
    plain, rev = _fields(), _fields(reverse_source=True, reverse_target=True)
    src, tgt = plain.encode_pair("abc", "xyz")
    rsrc, rtgt = rev.encode_pair("abc", "xyz")
    assert rsrc == src[::-1]
    assert rtgt[0] == tgt[0] and rtgt[-1] == tgt[-1]  # bos ... eos stay in place
    assert rtgt[1:-1] == tgt[1:-1][::-1]
    assert rev.tgt_tokens(rtgt[1:-1]) == ["x", "y", "z"] == plain.tgt_tokens(tgt[1:-1])
    assert encode_pairs(rev, [("abc", "xyz")], 10, 10) == [(rsrc, rtgt)]


def test_fields_state_keeps_the_direction_and_old_checkpoints_read_forward():
    rev = _fields(reverse_target=True)
    back = Fields.from_state(rev.state())
    assert (back.reverse_source, back.reverse_target) == (False, True)
    old = {k: v for k, v in rev.state().items() if not k.startswith("reverse")}
    assert Fields.from_state(old).reverse_target is False


def _with(tr: Translator, **flags) -> Translator:
    return Translator(tr.model, dataclasses.replace(tr.fields, **flags), tr.config)


def test_reverse_source_equals_feeding_the_reversed_input(attention_checkpoint):
    plain = load(attention_checkpoint, device="cpu")
    rev = _with(plain, reverse_source=True)
    for text in ["abcde", "fab", "edcba"]:
        a = rev.translate_full([text], attention=True, beam=3)[0][0]
        b = plain.translate_full([text[::-1]], attention=True, beam=3)[0][0]
        assert a.text == b.text and a.score == pytest.approx(b.score)
        assert a.src_tokens == list(text)
        # columns follow the user's source tokens: column j of a is column -1-j of b
        assert torch.allclose(torch.tensor(a.attention), torch.tensor(b.attention).flip(1))


def test_reverse_target_returns_outputs_and_attention_in_reading_order(attention_checkpoint):
    plain = load(attention_checkpoint, device="cpu")
    rev = _with(plain, reverse_target=True)
    for text in ["abcde", "fab"]:
        a = rev.translate_full([text], attention=True, beam=3, nbest=2)[0]
        b = plain.translate_full([text], attention=True, beam=3, nbest=2)[0]
        for x, y in zip(a, b, strict=True):
            assert x.tokens == y.tokens[::-1]
            n = len(y.tokens)
            want = torch.tensor(y.attention)
            want = torch.cat([want[:n].flip(0), want[n:]])
            assert torch.allclose(torch.tensor(x.attention), want)


def test_training_stores_the_direction_and_ensembles_refuse_to_mix_it(tmp_path,
                                                                       attention_checkpoint):
    cfg = from_dict({
        "name": "r2l", "run_dir": str(tmp_path / "r2l"),
        "data": {"task": "reverse", "task_sizes": [200, 20, 20], "task_max_len": 5,
                 "reverse_target": True},
        "model": {"cell": "gru", "emb_size": 16, "hidden_size": 32,
                  "conditioning": "attention", "attention": "general"},
        "train": {"max_steps": 4, "valid_every": 4, "batch_tokens": 300, "progress": False,
                  "threads": 1, "keep_last": 1},
    })
    run = train(cfg)
    tr = load(run / "best.pt", device="cpu")
    assert tr.fields.reverse_target and not tr.fields.reverse_source
    with pytest.raises(CheckpointError, match="reverse_source/reverse_target"):
        load(run / "best.pt", attention_checkpoint, device="cpu")
