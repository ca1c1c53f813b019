"""The data of the structures beyond seq2seq (tandem.data.readers, each structure's module):
each reader's happy path and its bad-input errors (file:line and what is allowed), the names
hash split, lm streams, padded batches, fields that survive a checkpoint. All on small files
made here; the last tests read the real corpora in ../shared/data when they are there."""

from __future__ import annotations

import gzip
import io
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tandem.config import from_dict
from tandem.data import readers
from tandem.data.fields import StructFields
from tandem.data.tokenizers import CharTokenizer, WordTokenizer
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID
from tandem.errors import ConfigError, DataError
from tandem.structures import get
from tandem.structures.classify import Classify
from tandem.structures.classify import collate as collate_classify
from tandem.structures.common import TAG_PAD
from tandem.structures.generate import collate as collate_generate
from tandem.structures.lm import NEWLINE, stream_text, stream_tokens
from tandem.structures.lm import stream_batches as lm_stream_batches
from tandem.structures.tag import collate as collate_tag


def load(cfg):
    """The structure's data for `cfg` (what training reads)."""
    return get(cfg.model.structure).load(cfg)


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _at(path: Path, line: int) -> str:
    """The regex of a message naming path:line."""
    return re.escape(f"{path}:{line}:")


def _cfg(structure: str, **data):
    return from_dict({"model": {"structure": structure}, "data": data})


# --- classify / generate readers ---------------------------------------------------------------


def test_read_labelled_reads_text_then_label_and_label_then_text(tmp_path):
    p = _write(tmp_path / "c.tsv", "a fine film\tpos\nwith\ta tab\tneg\n")
    items, stats = readers.read_labelled(p)
    assert [(t, lab) for t, lab, _ in items] == [("a fine film", "pos"), ("with\ta tab", "neg")]
    assert items[1][2] == f"{p}:2" and stats.read == 2
    g = _write(tmp_path / "g.tsv", "Greek\tPapadopoulos\n")
    assert readers.read_labelled(g, label_first=True)[0][0][:2] == ("Papadopoulos", "Greek")


def test_read_labelled_missing_tab_names_file_and_line_or_is_skipped(tmp_path):
    p = _write(tmp_path / "c.tsv", "good\tpos\nno tab here\nfine\tneg\n")
    with pytest.raises(DataError, match=_at(p, 2) + r" no tab; each line is text<TAB>label"):
        readers.read_labelled(p)
    items, stats = readers.read_labelled(p, on_bad_line="skip")
    assert [lab for _, lab, _ in items] == ["pos", "neg"] and stats.skipped == 1


def test_read_sst2_names_labels_and_refuses_other_digits(tmp_path):
    p = _write(tmp_path / "stsa.binary.dev", "1 a joy .\n0 dull .\n")
    items, _ = readers.read_sst2(p)
    assert [(t, lab) for t, lab, _ in items] == [("a joy .", "positive"), ("dull .", "negative")]
    bad = _write(tmp_path / "bad", "1 ok\n2 what\n")
    with pytest.raises(DataError, match=_at(bad, 2) + r" .*0 \(negative\) or 1 \(positive\)"):
        readers.read_sst2(bad)


def _names_folder(root: Path, n: int = 600, seed: int = 3) -> Path:
    rng = random.Random(seed)
    root.mkdir()
    for lang, letters in (("Alpha", "abcde"), ("Beta", "fghij"), ("Gamma", "klmno")):
        names = ["".join(rng.choices(letters, k=rng.randint(3, 8))).title() for _ in range(n)]
        names.append("Shared")  # the same name under every label
        _write(root / f"{lang}.txt", "\n".join(names) + "\n")
    _write(root / "README.md", "not a label\n")
    return root


def test_names_hash_split_is_deterministic_keeps_equal_names_together_and_is_80_10_10(tmp_path):
    folder = _names_folder(tmp_path / "names")
    items, stats = readers.read_label_folder(folder)
    assert {lab for _, lab, _ in items} == {"Alpha", "Beta", "Gamma"} and stats.read == 1803
    a = readers.hash_split(items, seed=0)
    assert a == readers.hash_split(list(items), seed=0)
    assert sum(map(len, a)) == len(items)
    other = readers.hash_split(items, seed=1)
    assert other != a
    for split in a:  # every copy of a name in one split
        names = {t for t, _, _ in split}
        assert not any(names & {t for t, _, _ in s} for s in a if s is not split)
    n = len(items)
    assert 0.75 * n < len(a[0]) < 0.85 * n and 0.06 * n < len(a[1]) < 0.14 * n
    assert readers.hash_bucket("Shared", 0) == readers.hash_bucket("  Shared ", 0)


def test_label_folder_empty_line_names_file_and_line(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    bad = _write(folder / "X.txt", "a\n\nb\n")
    with pytest.raises(DataError, match=_at(bad, 2) + " empty line"):
        readers.read_label_folder(folder)
    assert readers.read_label_folder(folder, "skip")[1].skipped == 1


# --- tag readers --------------------------------------------------------------------------------

CONLLU = (
    "# sent_id = 1\n"
    "# text = I can't go.\n"
    "1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_\n"
    "2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_\n"
    "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_\n"
    "4\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_\n"
    "4.1\twent\tgo\tVERB\tVBD\t_\t_\t_\t4:conj\t_\n"
    "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_\n"
    "\n"
    "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n"
    "\n"
)


def test_read_conllu_skips_ranges_and_empty_nodes_and_reads_upos_or_xpos(tmp_path):
    p = tmp_path / "a.conllu.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write(CONLLU)
    sents, stats = readers.read_tagged(p)
    assert [s[0] for s in sents] == [["I", "ca", "n't", "go", "."], ["Hi"]]
    assert sents[0][1] == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert sents[1][2] == f"{p}:11" and stats.read == 2
    assert readers.read_conllu(p, "xpos")[0][0][1] == ["PRP", "MD", "RB", "VB", "."]


def _broken(line_no: int, new: str) -> str:
    lines = CONLLU.split("\n")
    lines[line_no - 1] = new
    return "\n".join(lines)


@pytest.mark.parametrize(("line", "text", "says"), [
    (5, "2\tca\tcan\tAUX\tMD\t_\t4\taux\t_", "10 tab-separated columns"),
    (5, "x\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_", "not valid CoNLL-U: .*'x' is not a valid ID"),
    (5, "2.\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_", "not valid CoNLL-U: .*'2.' is not a valid ID"),
    (5, "3\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_", "word ID '3' where 2 was expected"),
    (5, "2\tca\tcan\t_\tMD\t_\t4\taux\t_\t_", r"no UPOS tag \(column 4"),
])
def test_malformed_conllu_names_file_and_line(tmp_path, line, text, says):
    p = _write(tmp_path / "bad.conllu", _broken(line, text))
    with pytest.raises(DataError, match=_at(p, line) + " .*" + says):
        readers.read_conllu(p)
    sents, stats = readers.read_conllu(p, on_bad_line="skip")  # the whole sentence goes
    assert [s[0] for s in sents] == [["Hi"]] and stats.skipped == 1


def test_read_word_tag_sentences_and_errors(tmp_path):
    p = _write(tmp_path / "t.tsv", "the\tDET\ncat\tNOUN\n\n\nruns\tVERB\n")
    sents, _ = readers.read_tagged(p)
    assert [(s[0], s[1]) for s in sents] == [(["the", "cat"], ["DET", "NOUN"]),
                                             (["runs"], ["VERB"])]
    bad = _write(tmp_path / "b.tsv", "the\tDET\ncat NOUN\n\nruns\tVERB\n")
    with pytest.raises(DataError, match=_at(bad, 2) + " no tab; each line is word<TAB>tag"):
        readers.read_tagged(bad)
    sents, stats = readers.read_tagged(bad, on_bad_line="skip")
    assert [s[0] for s in sents] == [["runs"]] and stats.skipped == 1


# --- load_structured ----------------------------------------------------------------------------


def test_classify_unknown_label_at_dev_names_file_line_and_label(tmp_path):
    train = _write(tmp_path / "train.tsv", "good film\tpos\nbad film\tneg\n")
    dev = _write(tmp_path / "dev.tsv", "fine\tpos\nso so\tneutral\nmeh\tmixed\n")
    with pytest.raises(DataError, match=_at(dev, 2) + " dev has labels that never appear in "
                       r"the training data: 'neutral' .*'mixed'"):
        load(_cfg("classify", train=str(train), dev=str(dev)))
    ok = _write(tmp_path / "ok.tsv", "bad\tneg\n")
    data = load(_cfg("classify", train=str(train), dev=str(ok),
                                src_tokenizer="word"))
    f = data.fields
    assert f.labels == ["neg", "pos"]
    assert data.train[0] == (f.encode_text("good film"), f.label_ids["pos"])
    assert data.dev == [(f.encode_text("bad"), 0)] and data.items["dev"][0][1] == "neg"


def test_tag_data_words_chars_tags_and_unknown_tag(tmp_path):
    train = _write(tmp_path / "train.conllu", CONLLU)
    data = load(_cfg("tag", train=str(train)))
    f = data.fields
    words, chars, tags = data.train[1]
    assert words == [f.vocab.stoi["Hi"]] and chars == [[f.chars.stoi["H"], f.chars.stoi["i"]]]
    assert tags == [f.label_ids["INTJ"]] and f.unseen(["Hi", "Ho"]) == [False, True]
    dev = _write(tmp_path / "dev.tsv", "Hi\tINTJ\n\nyo\tX\n")
    with pytest.raises(DataError, match=_at(dev, 3) + " dev has tags .*'X'"):
        load(_cfg("tag", train=str(train), dev=str(dev)))


def test_lm_text_split_90_10_keeps_every_character(tmp_path):
    text = "First  Citizen:\nBefore we proceed, hear me.\n\nAll:\nSpeak. \n" * 7
    p = _write(tmp_path / "input.txt", text)
    data = load(_cfg("lm", train=str(p)))
    cut = int(len(text) * 0.9)
    assert data.items["train"] == text[:cut] and data.items["dev"] == text[cut:]
    assert len(data.train) == cut and len(data.dev) == len(text) - cut  # one token a char
    assert data.fields.decode(data.train + data.dev) == text
    assert data.test == []


def test_lm_word_tokens_keep_line_breaks():
    tok = WordTokenizer()
    toks = stream_tokens(tok, "a b\n\nc")
    assert toks == ["a", "b", NEWLINE, NEWLINE, "c"]
    assert stream_text(tok, toks) == "a b\n\nc"
    assert stream_tokens(CharTokenizer(), "a  b")[1:3] == [CharTokenizer.SPACE] * 2


def test_generate_from_labels_and_features(tmp_path):
    train = _write(tmp_path / "g.tsv", "Greek\tPapas\nIrish\tOwen\n")
    data = load(_cfg("generate", train=str(train)))
    f = data.fields
    assert data.train[0] == (f.label_ids["Greek"], [BOS_ID, *f.encode_text("Papas"), EOS_ID])
    assert f.decode(data.train[1][1]) == "Owen"
    text = _write(tmp_path / "caps.txt", "a red box\nthe sea\nblue sky\n")
    feats = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "f.npy", feats)
    data = load(_cfg("generate", train=str(text), features=str(tmp_path / "f.npy")))
    assert data.fields.num_features == 4 and data.features["train"].dtype == np.float32
    b = collate_generate([data.train[2], data.train[0]], [2, 0], data.features["train"])
    assert torch.equal(b.cond, torch.tensor(feats[[2, 0]], dtype=torch.float32))


def test_npy_with_the_wrong_row_count_names_both_files(tmp_path):
    text = _write(tmp_path / "caps.txt", "a red box\nthe sea\nblue sky\n")
    np.save(tmp_path / "f.npy", np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'f.npy'} has 4 rows but {text} "
                                                  "has 3 lines")):
        load(_cfg("generate", train=str(text), features=str(tmp_path / "f.npy")))
    bad = np.zeros((3, 2), dtype=np.float32)
    bad[1, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"row 1 \(line 2 of .*caps\.txt\) holds NaN"):
        readers.load_features(tmp_path / "nan.npy", 3, text)


def test_features_config_needs_dev_features_and_generate(tmp_path):
    with pytest.raises(ConfigError, match=r"^data\.dev_features = None is not allowed"):
        _cfg("generate", train="t.txt", dev="d.txt", features="f.npy")
    with pytest.raises(ConfigError, match=r"^data\.features = 'f\.npy' is not allowed: only "
                       "with model.structure = generate"):
        _cfg("classify", train="t.txt", features="f.npy")
    with pytest.raises(ConfigError, match=r"^data\.corpus = 'ud_ewt' is not allowed"):
        _cfg("classify", corpus="ud_ewt")


# --- batches -------------------------------------------------------------------------------------


def test_lm_streams_are_contiguous_in_order_and_cover_the_data():
    ids = list(range(103))
    for offset in (0, 2):
        batches = lm_stream_batches(ids, streams=4, bptt=7, offset=offset)
        assert [b.inputs.shape for b in batches] == [(4, 7)] * 3 + [(4, 4)]
        assert [b.index for b in batches] == [0, 1, 2, 3]
        rows = torch.cat([b.inputs for b in batches], dim=1)
        targets = torch.cat([b.targets for b in batches], dim=1)
        for r in range(4):  # each row is one contiguous stretch, the streams end to end
            assert rows[r].tolist() == list(range(offset + 25 * r, offset + 25 * (r + 1)))
        assert torch.equal(targets, rows + 1)
        assert sorted(targets.flatten().tolist()) == list(range(offset + 1, offset + 101))
    # ids that are not their own positions, so a slip between value and index shows: by hand,
    # L = (103 - 1) // 4 = 25, stream r = ids[25r : 25r + 25], batch 1 = its steps 7 .. 13
    shuffled = random.Random(3).sample(range(1000), 103)
    second = lm_stream_batches(shuffled, 4, 7)[1]
    assert second.inputs.tolist() == [shuffled[25 * r + 7:25 * r + 14] for r in range(4)]
    assert second.targets.tolist() == [shuffled[25 * r + 8:25 * r + 15] for r in range(4)]
    last = lm_stream_batches(shuffled, 4, 7, offset=2)[3]  # the short tail, steps 21 .. 24
    assert last.inputs.tolist() == [shuffled[2 + 25 * r + 21:2 + 25 * r + 25] for r in range(4)]
    with pytest.raises(DataError, match="too short for 200 parallel streams"):
        lm_stream_batches(ids, 200, 7)


def test_collated_batches_are_padded_right():
    b = collate_classify([([5, 6, 7], 1), ([8], 0)], [4, 9])
    assert b.src.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]] and b.src_len.tolist() == [3, 1]
    assert b.labels.tolist() == [1, 0] and b.indices == [4, 9] and b.n_tokens == 4
    t = collate_tag([([4, 5, 6], [[7], [8, 9, 10], [11, 12]], [0, 1, 2]), ([5], [[8, 9]], [2])],
                    [0, 1])
    assert t.words.shape == (2, 3) and t.chars.shape == (2, 3, 3)
    assert t.chars[0, 0].tolist() == [7, PAD_ID, PAD_ID] and t.chars[1, 1:].eq(PAD_ID).all()
    assert t.char_len.tolist() == [[1, 3, 2], [2, 0, 0]] and t.lengths.tolist() == [3, 1]
    assert t.tags.tolist() == [[0, 1, 2], [2, TAG_PAD, TAG_PAD]]
    g = collate_generate([(1, [BOS_ID, 7, 8, EOS_ID]), (0, [BOS_ID, 9, EOS_ID])], [0, 1])
    assert g.cond.tolist() == [[1], [0]] and g.cond_len.tolist() == [1, 1]
    assert g.tgt_in.tolist() == [[BOS_ID, 7, 8], [BOS_ID, 9, PAD_ID]]
    assert g.tgt_out.tolist() == [[7, 8, EOS_ID], [9, EOS_ID, PAD_ID]] and g.n_tokens == 5


def test_struct_batches_cover_every_example_within_the_budget_repeatably():
    rng = random.Random(0)
    examples = [([1] * rng.randint(1, 30), 0) for _ in range(500)]
    a = Classify.batches(examples, 200, random.Random(5))
    assert a == Classify.batches(examples, 200, random.Random(5))
    assert a != Classify.batches(examples, 200, random.Random(6))
    assert sorted(i for b in a for i in b) == list(range(500))
    assert all(len(b) * max(len(examples[i][0]) for i in b) <= 200 for b in a)
    ordered = [i for b in Classify.batches(examples, 200, None) for i in b]
    assert [len(examples[i][0]) for i in ordered] == sorted(len(e[0]) for e in examples)


def test_fields_state_is_plain_and_rebuilds_the_same_encoding(tmp_path):
    train = _write(tmp_path / "train.conllu", CONLLU)
    fields = load(_cfg("tag", train=str(train), lowercase=True)).fields
    buf = io.BytesIO()
    torch.save(fields.state(), buf)
    buf.seek(0)
    again = StructFields.from_state(torch.load(buf, weights_only=True))
    words = ["I", "GO", "Hi", "zz"]
    assert again.encode_words(words) == fields.encode_words(words)
    assert again.labels == fields.labels and again.unseen(words) == fields.unseen(words)
    assert fields.encode_words(["GO"])[0] == fields.encode_words(["go"])[0]  # lowercase words


# --- the real corpora (read only where ../shared/data has them) ---------------------------------


def _needs(folder: str):
    return pytest.mark.skipif(not (SHARED / folder).is_dir(),
                              reason=f"{SHARED / folder} is not here (the real corpora are "
                                     "optional)")


@_needs("sst2")
def test_real_sst2_counts():
    data = load(_cfg("classify", corpus="sst2", corpus_dir=str(SHARED / "sst2"),
                                src_tokenizer="word"))
    assert (len(data.train), len(data.dev), len(data.test)) == (6920, 872, 1821)
    assert data.fields.labels == ["negative", "positive"]
    assert sum(lab for _, lab in data.test) == 909


@_needs("names")
def test_real_names_counts():
    items, _ = readers.read_label_folder(SHARED / "names")
    assert len(items) == 20050 and len({lab for _, lab, _ in items}) == 18
    data = load(_cfg("classify", corpus="names", corpus_dir=str(SHARED / "names")))
    assert len(data.train) + len(data.dev) + len(data.test) == 20050
    assert len(data.fields.labels) == 18


@_needs("ud_english_ewt")
def test_real_ewt_test_word_tokens():
    sents, _ = readers.read_conllu(SHARED / "ud_english_ewt" / "en_ewt-ud-test.conllu.gz")
    assert len(sents) == 2077 and sum(len(w) for w, _, _ in sents) == 25094
    assert len({t for _, ts, _ in sents for t in ts}) == 17


@_needs("tinyshakespeare")
def test_real_tinyshakespeare_chars_and_split():
    data = load(_cfg("lm", corpus="tinyshakespeare",
                                corpus_dir=str(SHARED / "tinyshakespeare")))
    assert len(data.train) + len(data.dev) == 1115394
    assert len(data.train) == int(1115394 * 0.9) and len(data.fields.vocab) == 65 + 4
