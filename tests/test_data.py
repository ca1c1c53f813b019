"""Tests for reading, tokenizing, vocabularies, batching and encoding (checkpoint files:
test_checkpoint.py)."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem import checkpoint
from tandem.config import DataConfig
from tandem.data.batching import collate, token_batches
from tandem.data.corpora import ReadStats, read_paired, read_sources, read_split, read_tsv
from tandem.data.dataset import build_fields, encode_pairs
from tandem.data.fields import Fields
from tandem.data.order import size_batches
from tandem.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    WordTokenizer,
    build,
    from_state,
    normalize,
)
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK, UNK_ID, Vocab
from tandem.errors import CheckpointError, ConfigError, DataError, TandemError

# --- TSV reader ----------------------------------------------------------------------------


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_read_tsv_good_file(tmp_path):
    p = write(tmp_path / "a.tsv", "hello\tolleh\r\nx y\tz\tw\nÄß\tßÄ")  # CRLF, no final newline
    pairs, stats = read_tsv(p)
    assert pairs == [("hello", "olleh"), ("x y", "z\tw"), ("Äß", "ßÄ")]
    assert stats == ReadStats(read=3, skipped=0)


BAD_LINES = [
    (b"\n", "empty line"),
    (b"   \t \n", "empty line"),
    (b"no tab here\n", "no tab"),
    (b"caf\xe9\tcafe\n", "not valid UTF-8"),
    (b"\ttarget\n", "empty source"),
    (b"  \ttarget\n", "empty source"),
    (b"source\t\n", "empty target"),
]


@pytest.mark.parametrize(("bad", "what"), BAD_LINES)
def test_read_tsv_bad_line_is_an_error_with_path_and_line(tmp_path, bad, what):
    p = write(tmp_path / "d.tsv", b"a\tb\n" + bad + b"c\td\n")
    with pytest.raises(DataError) as info:
        read_tsv(p, on_bad_line="error")
    msg = str(info.value)
    assert f"{p}:2" in msg
    assert what in msg
    assert "on_bad_line" in msg  # says how to skip instead


@pytest.mark.parametrize(("bad", "what"), BAD_LINES)
def test_read_tsv_bad_line_skipped_and_counted(tmp_path, bad, what):
    p = write(tmp_path / "d.tsv", b"a\tb\n" + bad + b"c\td\n" + bad + b"e\tf\n")
    pairs, stats = read_tsv(p, on_bad_line="skip")
    assert pairs == [("a", "b"), ("c", "d"), ("e", "f")]
    assert stats.read == 3 and stats.skipped == 2


def test_read_tsv_default_is_error(tmp_path):
    with pytest.raises(DataError):
        read_tsv(write(tmp_path / "d.tsv", "a\tb\nbad\n"))


def test_read_tsv_empty_and_missing_files(tmp_path):
    empty = write(tmp_path / "empty.tsv", b"")
    with pytest.raises(DataError, match="empty") as info:
        read_tsv(empty)
    assert str(empty) in str(info.value)
    missing = tmp_path / "missing.tsv"
    with pytest.raises(DataError, match="not found") as info:
        read_tsv(missing)
    assert str(missing) in str(info.value)


def test_read_tsv_only_bad_lines_with_skip(tmp_path):
    p = write(tmp_path / "bad.tsv", "x\n\ny\n")
    with pytest.raises(DataError, match="no usable lines") as info:
        read_tsv(p, on_bad_line="skip")
    assert str(p) in str(info.value)


def test_data_error_is_a_tandem_error():
    assert issubclass(DataError, TandemError) and issubclass(CheckpointError, TandemError)


# --- paired files --------------------------------------------------------------------------


def test_read_paired_mismatched_line_counts(tmp_path):
    src = write(tmp_path / "t.de", "a\nb\nc\n")
    tgt = write(tmp_path / "t.en", "x\ny\n")
    with pytest.raises(DataError) as info:
        read_paired(src, tgt)
    msg = str(info.value)
    assert str(src) in msg and str(tgt) in msg
    assert "3" in msg and "2" in msg


def test_read_paired_gzip(tmp_path):
    src_lines = [f"quelle {i} ä" for i in range(50)]
    tgt_lines = [f"target {i}" for i in range(50)]
    with gzip.open(tmp_path / "train.de.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(src_lines) + "\n")
    with gzip.open(tmp_path / "train.en.gz", "wt", encoding="utf-8") as f:
        f.write("\r\n".join(tgt_lines))  # CRLF and no final newline
    pairs, stats = read_paired(tmp_path / "train.de.gz", tmp_path / "train.en.gz")
    assert pairs == list(zip(src_lines, tgt_lines, strict=True))
    assert stats == ReadStats(read=50, skipped=0)
    # the same through read_split, as the config names them (prefix + suffixes)
    assert read_split(str(tmp_path / "train"), "de.gz", "en.gz") == pairs


def test_read_paired_bad_lines(tmp_path):
    src = write(tmp_path / "s.txt", b"a\n\nc\nd\n")
    tgt = write(tmp_path / "t.txt", b"w\nx\ny\xff\nz\n")
    with pytest.raises(DataError, match=f"{src}:2: empty line"):
        read_paired(src, tgt)
    pairs, stats = read_paired(src, tgt, on_bad_line="skip")
    assert pairs == [("a", "w"), ("d", "z")]
    assert stats == ReadStats(read=2, skipped=2)
    src2 = write(tmp_path / "s2.txt", b"a\nb\nc\nd\n")
    with pytest.raises(DataError, match=f"{tgt}:3: not valid UTF-8"):
        read_paired(src2, tgt)


def test_read_paired_corrupt_gzip(tmp_path):
    src = write(tmp_path / "x.de.gz", b"this is not gzip data\n")
    tgt = write(tmp_path / "x.en", b"a\n")
    with pytest.raises(DataError, match="cannot read") as info:
        read_paired(src, tgt)
    assert str(src) in str(info.value)


def test_read_split_tsv_and_read_sources(tmp_path):
    p = write(tmp_path / "d.tsv", "a\tb\nc\td\n")
    assert read_split(str(p), None, None) == [("a", "b"), ("c", "d")]
    assert read_sources(p) == ["a", "c"]
    plain = write(tmp_path / "in.txt", "one line\nanother\n")
    assert read_sources(plain) == ["one line", "another"]
    with pytest.raises(DataError, match="in2.txt:2"):
        read_sources(write(tmp_path / "in2.txt", b"ok\nbad \xc3\n"))


# --- vocabulary ----------------------------------------------------------------------------


def test_vocab_specials_and_ordering():
    v = Vocab.build([["b", "a", "c", "a"], ["c", "a", "d"]])
    assert v.itos[:4] == list(SPECIALS) == ["<pad>", "<unk>", "<s>", "</s>"]
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    # most frequent first, ties alphabetical
    assert v.itos[4:] == ["a", "c", "b", "d"]
    assert len(v) == 8
    assert all(v.stoi[t] == i for i, t in enumerate(v.itos))


def test_vocab_is_deterministic():
    seqs = [list(s) for s in ["zebra", "apple", "mango", "kiwi", "yak"]]
    a = Vocab.build(seqs)
    b = Vocab.build(list(reversed([list(reversed(s)) for s in seqs])))
    assert a.itos == b.itos


def test_vocab_min_freq_and_max_size():
    seqs = [["a"] * 5, ["b"] * 3, ["c"] * 2, ["d"]]
    assert Vocab.build(seqs, min_freq=2).itos[4:] == ["a", "b", "c"]
    assert Vocab.build(seqs, max_size=2).itos[4:] == ["a", "b"]
    assert Vocab.build(seqs, min_freq=3, max_size=10).itos[4:] == ["a", "b"]
    assert Vocab.build(seqs, max_size=None).itos[4:] == ["a", "b", "c", "d"]


def test_vocab_specials_in_data_are_not_duplicated():
    v = Vocab.build([["<unk>", "x", "</s>", "x"]])
    assert v.itos == [*SPECIALS, "x"]


def test_vocab_encode_unknown_and_decode():
    v = Vocab.build([["a", "b"]])
    assert v.encode(["a", "zzz", "b"]) == [v.stoi["a"], UNK_ID, v.stoi["b"]]
    assert v.encode(["a"], add_bos=True, add_eos=True) == [BOS_ID, v.stoi["a"], EOS_ID]
    ids = [BOS_ID, v.stoi["a"], PAD_ID, v.stoi["b"], EOS_ID, v.stoi["a"], v.stoi["b"]]
    assert v.decode(ids) == ["a", "b"]  # stops at eos, drops bos/pad
    assert v.decode(torch.tensor([v.stoi["b"], 999, -1])) == ["b", UNK, UNK]
    assert v.decode([UNK_ID]) == [UNK]
    assert v.unknown(["a", "q", "b", "r"]) == ["q", "r"]


# --- tokenizers ----------------------------------------------------------------------------


def test_normalize():
    assert normalize("  a \t b\n c  ") == "a b c"
    assert normalize("Cafe\u0301") == "Café"  # NFC
    assert normalize("ABC", lowercase=True) == "abc"


def test_char_tokenizer():
    tok = CharTokenizer()
    assert tok.tokenize(" ab  c ") == ["a", "b", "▁", "c"]
    assert tok.detokenize(["a", "b", "▁", "c"]) == "ab c"
    assert CharTokenizer(lowercase=True).tokenize("AB") == ["a", "b"]


def test_word_tokenizer():
    tok = WordTokenizer()
    assert tok.tokenize("  Hello   world\t! ") == ["Hello", "world", "!"]
    assert tok.detokenize(["Hello", "world"]) == "Hello world"
    assert WordTokenizer(lowercase=True).tokenize("Hello World") == ["hello", "world"]


@pytest.mark.parametrize("tok", [CharTokenizer(), WordTokenizer(lowercase=True)])
def test_simple_tokenizer_state_round_trip(tok):
    again = from_state(tok.state())
    assert type(again) is type(tok) and again.lowercase == tok.lowercase
    assert again.tokenize("Some Text") == tok.tokenize("Some Text")


def test_from_state_unknown_kind():
    with pytest.raises(ConfigError, match="unknown tokenizer kind"):
        from_state({"kind": "bytes"})


no_space_marker = st.text(st.characters(blacklist_characters="▁"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(no_space_marker, st.booleans())
def test_char_round_trip_property(text, lowercase):
    tok = CharTokenizer(lowercase)
    tokens = tok.tokenize(text)
    assert all(len(t) == 1 for t in tokens)
    assert " " not in tokens
    assert tok.detokenize(tokens) == normalize(text, lowercase)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.booleans())
def test_word_round_trip_property(text, lowercase):
    tok = WordTokenizer(lowercase)
    tokens = tok.tokenize(text)
    assert all(t and not any(c.isspace() for c in t) for t in tokens)
    assert tok.detokenize(tokens) == normalize(text, lowercase)


def test_char_round_trip_with_literal_space_marker():
    tok = CharTokenizer()
    assert tok.detokenize(tok.tokenize("a▁b")) == "a▁b"


WORDS = ("the a cat dog bird sat ran flew on under over mat house tree big small red blue "
         "green quickly slowly and with near far morning evening").split()


def _sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


@pytest.fixture(scope="module")
def sp_corpus() -> list[str]:
    return _sentences(200, seed=0)


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def sp_tok(request, sp_corpus) -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(sp_corpus, vocab_size=60, model_type=request.param)


def test_sentencepiece_trains_a_small_model(sp_tok):
    assert 1 < sp_tok.sp.get_piece_size() <= 60
    assert sp_tok.kind == "sentencepiece"
    assert isinstance(sp_tok.state()["model"], bytes)


def test_sentencepiece_state_round_trip(sp_tok, sp_corpus):
    state = sp_tok.state()
    assert state["kind"] == "sentencepiece"
    again = from_state(state)
    assert isinstance(again, SentencePieceTokenizer)
    for s in [*sp_corpus[:50], *_sentences(30, seed=1)]:
        assert again.tokenize(s) == sp_tok.tokenize(s)


def test_sentencepiece_state_survives_a_checkpoint(tmp_path, sp_tok, sp_corpus):
    path = checkpoint.save({"model": {}, "tok": sp_tok.state()}, tmp_path / "sp.pt")
    again = from_state(checkpoint.load(path)["tok"])
    assert again.tokenize(sp_corpus[0]) == sp_tok.tokenize(sp_corpus[0])


def test_sentencepiece_decode_encode_in_domain(sp_tok, sp_corpus):
    for s in [*sp_corpus, *_sentences(50, seed=2), "  the   cat  sat  "]:
        pieces = sp_tok.tokenize(s)
        assert pieces and all(isinstance(p, str) for p in pieces)
        assert sp_tok.detokenize(pieces) == normalize(s)


def test_sentencepiece_lowercase(sp_corpus):
    tok = SentencePieceTokenizer.train(sp_corpus, vocab_size=60, lowercase=True)
    assert tok.tokenize("THE Cat") == tok.tokenize("the cat")
    assert from_state(tok.state()).lowercase is True


def test_build_makes_each_kind(sp_corpus):
    assert isinstance(build("char", sp_corpus, False, 60, "unigram"), CharTokenizer)
    assert isinstance(build("word", sp_corpus, True, 60, "unigram"), WordTokenizer)
    assert isinstance(build("sentencepiece", sp_corpus, False, 60, "bpe"), SentencePieceTokenizer)


# --- batching ------------------------------------------------------------------------------


def _examples(n: int, seed: int, max_len: int = 30) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    return [([5] * rng.randint(1, max_len), [BOS_ID] + [6] * rng.randint(0, max_len) + [EOS_ID])
            for _ in range(n)]


def _check_batches(examples, batches, batch_tokens):
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(examples)))  # each example exactly once
    for b in batches:
        assert b
        longest = max(max(len(examples[i][0]), len(examples[i][1])) for i in b)
        if len(b) > 1:
            assert len(b) * longest <= batch_tokens // 2


@pytest.mark.parametrize("batch_tokens", [1, 2, 40, 64, 200, 5000])
def test_token_batches_budget_and_coverage(batch_tokens):
    examples = _examples(300, seed=batch_tokens)
    batches = token_batches(examples, batch_tokens, random.Random(3))
    _check_batches(examples, batches, batch_tokens)
    assert token_batches(examples, batch_tokens, random.Random(3)) == batches


def test_token_batches_seeded_shuffle():
    examples = _examples(400, seed=0)
    a = token_batches(examples, 200, random.Random(1))
    b = token_batches(examples, 200, random.Random(2))
    assert a != b  # another seed, another order
    _check_batches(examples, a, 200)
    _check_batches(examples, b, 200)


def test_token_batches_without_rng_is_length_sorted():
    examples = _examples(100, seed=5)
    batches = token_batches(examples, 120, None)
    _check_batches(examples, batches, 120)
    flat = [i for b in batches for i in b]
    costs = [max(len(examples[i][0]), len(examples[i][1])) for i in flat]
    assert costs == sorted(costs)


def test_token_batches_overlong_example_gets_its_own_batch():
    examples = [([5] * 3, [2, 6, 3]), ([5] * 100, [2, 6, 3]), ([5] * 2, [2, 3])]
    batches = token_batches(examples, 20, random.Random(0))
    assert [1] in batches
    _check_batches(examples, batches, 20)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(2, 60)), min_size=1, max_size=80),
       st.integers(1, 400), st.integers(0, 2**32))
def test_token_batches_property(lengths, batch_tokens, seed):
    examples = [([7] * s, [2] + [8] * (t - 2) + [3]) for s, t in lengths]
    batches = token_batches(examples, batch_tokens, random.Random(seed))
    _check_batches(examples, batches, batch_tokens)
    assert token_batches(examples, batch_tokens, random.Random(seed)) == batches
    _check_batches(examples, token_batches(examples, batch_tokens, None), batch_tokens)


def test_collate_shapes_and_markers():
    examples = [([4, 5, 6], [BOS_ID, 7, 8, 9, EOS_ID]), ([4], [BOS_ID, EOS_ID]),
                ([6, 6], [BOS_ID, 7, EOS_ID])]
    b = collate(examples, [10, 11, 12])
    assert b.src.shape == (3, 3) and b.src.dtype == torch.long
    assert b.src_len.tolist() == [3, 1, 2]
    assert b.tgt_in.shape == b.tgt_out.shape == (3, 4)
    assert b.src.tolist() == [[4, 5, 6], [4, 0, 0], [6, 6, 0]]
    assert b.tgt_in.tolist() == [[2, 7, 8, 9], [2, 0, 0, 0], [2, 7, 0, 0]]
    assert b.tgt_out.tolist() == [[7, 8, 9, 3], [3, 0, 0, 0], [7, 3, 0, 0]]
    for i, (_, tgt) in enumerate(examples):
        n = len(tgt) - 1
        assert b.tgt_in[i, 0] == BOS_ID
        assert b.tgt_out[i, n - 1] == EOS_ID
        assert (b.tgt_out[i, n:] == PAD_ID).all() and (b.tgt_in[i, n:] == PAD_ID).all()
    assert b.n_tokens == 4 + 1 + 2
    assert len(b) == 3 and b.indices == [10, 11, 12]


def test_size_batches():
    lengths = [5, 1, 4, 2, 3]
    batches = size_batches(5, lengths, 2)
    assert batches == [[1, 3], [4, 2], [0]]


# --- fields and encoding -------------------------------------------------------------------


def _fields(pairs):
    cfg = DataConfig(task="copy")
    return build_fields(cfg, pairs)


def test_build_fields_and_state_round_trip():
    pairs = [("abc", "cba"), ("ab", "ba"), ("c d", "d c")]
    f = _fields(pairs)
    assert f.src_vocab.itos[4:] == ["a", "b", "c", "d", "▁"]
    again = Fields.from_state(f.state())
    assert again.src_vocab.itos == f.src_vocab.itos and again.tgt_vocab.itos == f.tgt_vocab.itos
    assert again.encode_pair("abc", "cba") == f.encode_pair("abc", "cba")
    src, tgt = f.encode_pair("abz", "ba")
    assert src[-1] == UNK_ID and tgt[0] == BOS_ID and tgt[-1] == EOS_ID


def test_encode_pairs_drops_overlong_and_logs(tandem_log):
    pairs = [("ab", "ba"), ("abcd", "dcba"), ("abc", "cba"), ("a", "abcdef"), ("   ", "a")]
    f = _fields(pairs)
    out = encode_pairs(f, pairs, max_src_len=3, max_tgt_len=4)
    assert out == [f.encode_pair("ab", "ba"), f.encode_pair("abc", "cba")]
    log_text = "\n".join(r.getMessage() for r in tandem_log)
    assert "dropped 3 of 5" in log_text and "max_src_len=3" in log_text


def test_encode_pairs_keeps_everything_quietly(tandem_log):
    pairs = [("ab", "ba"), ("abc", "cba")]
    out = encode_pairs(_fields(pairs), pairs, 10, 10)
    assert len(out) == 2 and tandem_log == []


def test_encode_pairs_everything_filtered():
    pairs = [("abcd", "dcba")]
    with pytest.raises(ConfigError, match="max_src_len"):
        encode_pairs(_fields(pairs), pairs, max_src_len=2, max_tgt_len=2)
