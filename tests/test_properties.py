"""Property-based tests (hypothesis): whatever the input, the answer is an output or one of
tandem's own errors, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.config import from_dict
from tandem.data.tokenizers import SentencePieceTokenizer, normalize
from tandem.data.vocab import Vocab
from tandem.errors import DataError
from tandem.structures.translator import Translator
from tandem.train.trainer import Trainer

ALPHABET = "abcdefgh "


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> Translator:
    run = Trainer.from_config(from_dict({
        "run_dir": str(tmp_path_factory.mktemp("prop") / "run"),
        "data": {"task": "reverse", "task_sizes": [200, 10, 10], "task_max_len": 8,
                 "max_src_len": 30},
        "model": {"cell": "gru", "emb_size": 8, "hidden_size": 16},
        "train": {"max_steps": 2, "valid_every": 2, "progress": False, "threads": 1},
        "decode": {"max_len_a": 0.5, "max_len_b": 3},
    })).train()
    return Translator.from_checkpoint(run / "best.pt")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=1000))
def test_translate_never_raises_on_any_text(translator, text):
    out = translator.translate([text], beam=2)
    assert len(out) == 1 and isinstance(out[0], str)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["truncate", "error"]))
def test_long_inputs_are_truncated_or_refused_as_configured(translator, text, mode):
    text = text + "a" * 40  # always over the limit of 30 characters
    if mode == "truncate":
        assert len(translator.translate([text], beam=1, on_long_input=mode)) == 1
    else:
        with pytest.raises(DataError, match="data.max_src_len = 30"):
            translator.translate([text], beam=1, on_long_input=mode)


def test_unknown_characters_are_reported(translator):
    full = translator.translate_full(["ab\u2603c"], beam=1)
    assert full[0][0].unknown == ["\u2603"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=5), max_size=30), st.lists(st.text(max_size=5), max_size=30),
       st.integers(1, 3), st.none() | st.integers(1, 20))
def test_vocab_maps_any_tokens_to_valid_ids(train_tokens, tokens, min_freq, max_size):
    v = Vocab.build([train_tokens], min_freq=min_freq, max_size=max_size)
    ids = v.encode(tokens, add_bos=True, add_eos=True)
    assert len(ids) == len(tokens) + 2
    assert all(0 <= i < len(v) for i in ids)
    known = [t for t in tokens if t in v.stoi]
    assert [v.itos[v.stoi[t]] for t in known] == known


@pytest.fixture(scope="module")
def sp_tok() -> SentencePieceTokenizer:
    import random

    rng = random.Random(0)
    corpus = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(5, 40)))
              for _ in range(300)]
    return SentencePieceTokenizer.train(corpus, vocab_size=40)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=100))
def test_sentencepiece_round_trips_any_text_in_its_alphabet(sp_tok, text):
    """decode(encode(x)) == x after sentencepiece's own normalization (whitespace runs
    collapsed, ends stripped), which tandem's `normalize` reproduces."""
    assert sp_tok.detokenize(sp_tok.tokenize(text)) == normalize(text)
