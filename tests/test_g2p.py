"""English pronunciations out of the box (tandem/pronounce/, `tandem g2p`, `tandem distill`):
dictionary words come back exactly as the CMU dictionary has them; other words go through the
model, batched; stress, compounds, apostrophes and refused tokens follow the documented
rules; the shipped model is small, loads safely and refuses a damaged copy; the API equals
the CLI."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

import tandem
from tandem.cli import G2P_CHUNK, G2P_FIRST_CHUNK, g2p_chunks
from tandem.cli import main as cli_main
from tandem.config import from_dict
from tandem.errors import ConfigError
from tandem.pronounce import G2P, G2PError, cmu_dictionary, pronunciation_scores, strip_stress
from tandem.train.trainer import train

ARPABET = {"AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F",
           "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S",
           "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH"}


@pytest.fixture(scope="module")
def tiny_g2p(tmp_path_factory):
    """A small G2P model trained briefly on every 25th word of the package dictionary with
    stress (reading all 135k entries into batches would cost more than the training)."""
    tmp = tmp_path_factory.mktemp("g2p")
    run = tmp / "run"
    words = sorted(cmu_dictionary().items())[::25]
    splits = {"train": words[100:], "dev": words[:100]}
    for name, pairs in splits.items():
        (tmp / f"{name}.tsv").write_text("".join(f"{w}\t{prons[0]}\n" for w, prons in pairs),
                                        encoding="utf-8")
    train(from_dict({
        "name": "g2p", "run_dir": str(run),
        "data": {"train": str(tmp / "train.tsv"), "dev": str(tmp / "dev.tsv"),
                 "src_tokenizer": "char", "tgt_tokenizer": "word", "max_src_len": 20,
                 "max_tgt_len": 20},
        "model": {"emb_size": 16, "hidden_size": 32, "attention": "general", "dropout": 0.0},
        "train": {"max_steps": 60, "batch_tokens": 1500, "lr": 0.01, "valid_every": 10**6,
                  "valid_metric": "loss", "progress": False, "threads": 1, "keep_last": 0,
                  "tensorboard": False},
        "decode": {"max_len_a": 1.5, "max_len_b": 5},
    }))
    return run / "best.pt"


RELEASE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cmudict_full"


@functools.cache
def _package_dictionary() -> dict[str, list[list[str]]]:
    """The dictionary's own release file read here independently of tandem (word(2) folded
    into word, comments dropped): the reference the shipped copy is held to; without the
    shared data, the shipped copy itself."""
    path = RELEASE / "cmudict.dict"
    if not path.is_file():
        return {w: [p.split() for p in prons] for w, prons in cmu_dictionary().items()}
    out: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("#", 1)[0].split()
        if parts:
            out.setdefault(re.sub(r"\(\d+\)$", "", parts[0]), []).append(parts[1:])
    return out


def _dictionary(word: str) -> list[str]:
    return [" ".join(p) for p in _package_dictionary()[word.lower()]]


def test_dictionary_words_come_back_as_the_dictionary_has_them(tiny_g2p):
    g = G2P(tiny_g2p)
    for word in ("read", "PHOENIX", "Tomato", "don't"):
        (prons,) = g.pronounce([word], all_variants=True)
        assert [p.phonemes for p in prons] == _dictionary(word)
        assert {p.source for p in prons} == {"dictionary"}
        (first,) = g.pronounce([word])
        assert [p.phonemes for p in first] == _dictionary(word)[:1]


@pytest.mark.skipif(not (RELEASE / "cmudict.dict").is_file(), reason="needs ../shared/data")
def test_the_shipped_dictionary_is_the_release_file():
    """The shipped copy (lexicons/cmudict.tsv) holds every word of the dictionary's own
    release, every variant in order, and every lookup finds it; its licence is beside it."""
    want = {w: [" ".join(p) for p in prons] for w, prons in _package_dictionary().items()}
    lexicon = cmu_dictionary()
    assert dict(lexicon.items()) == want
    assert all(lexicon.get(w) == p for w, p in list(want.items())[::97])
    assert lexicon.get("zzzqx") == [] and lexicon.get("") == []
    licence = lexicon.path.parent / "LICENSE.cmudict"
    assert licence.read_bytes() == (RELEASE / "LICENSE").read_bytes()


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 1088, 1089, 5000])
def test_the_cli_pronounces_every_word_once_in_chunks_the_first_small(n):
    bounds = g2p_chunks(n)
    assert [i for s, e in bounds for i in range(s, e)] == list(range(n))
    if n:
        assert bounds[0] == (0, min(n, G2P_FIRST_CHUNK))
    assert all(e - s <= G2P_CHUNK for s, e in bounds)


def test_other_words_go_through_the_model_in_one_batched_call(tiny_g2p, monkeypatch):
    g = G2P(tiny_g2p)
    calls = []
    real = g._decode
    monkeypatch.setattr(g, "_decode", lambda words, nbest: calls.append(words) or
                        real(words, nbest))
    words = ["zorblax", "quextrin", "PHOENIX", "zorblax", "vimbletop"]
    out = g.pronounce(words, nbest=3)
    assert calls == [["zorblax", "quextrin", "vimbletop"]]  # once, each new word once
    for w, prons in zip(words, out, strict=True):
        assert prons and 1 <= len(prons) <= (1 if w == "PHOENIX" else 3)
        if w != "PHOENIX":
            assert {p.source for p in prons} == {"model"}
            assert len({p.phonemes for p in prons}) == len(prons)  # distinct guesses
            for p in prons:
                assert set(strip_stress(p.phonemes).split()) <= ARPABET


@pytest.mark.pins("g2p --beam", "g2p --nbest")
@pytest.mark.parametrize(("args", "api", "beam", "nbest"), [
    ([], {}, 2, 1),                                        # the default: a beam of 2
    (["--nbest", "3"], {"nbest": 3}, 3, 3),                # n-best guesses need a beam of n
    (["--beam", "5"], {"beam": 5}, 5, 1),
    (["--beam", "1"], {"beam": 1}, 1, 1),                  # greedy
    (["--beam", "2", "--nbest", "4"], {"beam": 2, "nbest": 4}, 4, 4),
])
def test_the_model_searches_with_a_beam_of_2_unless_asked_otherwise(tiny_g2p, monkeypatch,
                                                                   args, api, beam, nbest):
    """The CLI and the API send the same search width to the model: 2 for one guess (as
    accurate as 5 on held-out words, docs/g2p_model.md), at least n for n guesses."""
    from tandem.structures.translator import Translator

    seen = []
    real = Translator.translate
    monkeypatch.setattr(Translator, "translate", lambda self, srcs, **kw: seen.append(
        (kw["beam"], kw["nbest"])) or real(self, srcs, **kw))
    assert cli_main(["g2p", "zorblax", "--model", str(tiny_g2p), *args]) == 0
    g = G2P(tiny_g2p, **({"beam": api["beam"]} if "beam" in api else {}))
    g.pronounce(["zorblax"], nbest=api.get("nbest", 1))
    assert seen == [(beam, nbest), (beam, nbest)]


@pytest.mark.pins("g2p --quantize")
def test_int8_quantization_is_the_same_in_the_cli_and_the_api(tiny_g2p, capsys, monkeypatch):
    from tandem.structures.translator import Translator

    quantized = []
    real = Translator.quantize
    monkeypatch.setattr(Translator, "quantize", lambda self, kind="int8": quantized.append(
        kind) or real(self, kind))
    words = ["zorblax", "quextrin", "vimbletop"]
    g = G2P(tiny_g2p, quantize="int8")
    api = [p[0].phonemes for p in g.pronounce(words)]
    assert g.translator.int8 and quantized == ["int8"]  # the model really runs quantized
    assert cli_main(["g2p", *words, "--quantize", "int8", "--device", "auto",
                     "--model", str(tiny_g2p)]) == 0
    assert quantized == ["int8", "int8"]  # the CLI quantized too
    assert capsys.readouterr().out.splitlines() == [f"{w}\t{p}" for w, p in
                                                    zip(words, api, strict=True)]
    assert cli_main(["g2p", "zorblax", "--quantize", "int8", "--device", "cuda",
                     "--model", str(tiny_g2p)]) == 2
    assert "runs on the CPU" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="runs on the CPU"):
        G2P(tiny_g2p, device="cuda", quantize="int8")


def test_pronunciations_are_scored_with_and_without_stress():
    scores = pronunciation_scores(["F IY1 N", "AH0 B", "K AE1 T"],
                                  [["F IY1 N"], ["AH1 B", "EY1 B"], ["D AO1 G"]])
    assert scores["stress"]["wer"] == pytest.approx(200 / 3, abs=0.01)  # only PHOENIX right
    assert scores["no_stress"]["wer"] == pytest.approx(100 / 3, abs=0.01)  # AH0 B = AH1 B now
    assert scores["no_stress"]["per"] < scores["stress"]["per"]


def test_no_stress_strips_the_digits_only():
    assert strip_stress("F IY1 N IH0 K S") == "F IY N IH K S"
    g = G2P(dictionary=True)
    (prons,) = g.pronounce(["phoenix"], stress=False)
    assert prons[0].phonemes == re.sub(r"\d", "", _dictionary("phoenix")[0])
    (variants,) = g.pronounce(["read"], all_variants=True, stress=False)
    assert len({p.phonemes for p in variants}) == len(variants)


def test_compounds_are_split_and_joined_back_apostrophes_kept(tiny_g2p):
    g = G2P(tiny_g2p)
    assert "mother-in-law" in _package_dictionary()  # the dictionary's own compounds stay whole
    (whole,) = g.pronounce(["Mother-in-law"])
    assert whole[0].phonemes == _dictionary("mother-in-law")[0]
    (joined,) = g.pronounce(["tandem-bike/phoenix"])
    parts = [_dictionary(w)[0] for w in ("tandem", "bike", "phoenix")]
    assert joined[0].phonemes == " ".join(parts) and joined[0].source == "dictionary"
    (apos,) = g.pronounce(["o'brien's"])
    assert apos[0].phonemes  # one word with its apostrophes, not split


@pytest.mark.parametrize("token", ["R2D2", "naïve", "e@mail", "---"])
def test_a_token_with_characters_it_cannot_say_is_refused_by_name(tiny_g2p, token):
    with pytest.raises(G2PError, match=re.escape(repr(token))):
        G2P(tiny_g2p).pronounce(["fine", token])


@pytest.mark.pins("g2p <words>", "g2p --all", "g2p --input", "g2p --json", "g2p --no-stress")
def test_the_cli_prints_word_tab_phonemes_and_names_the_bad_line(tiny_g2p, tmp_path,
                                                                 capsys):
    assert cli_main(["g2p", "phoenix", "READ", "--all", "--model", str(tiny_g2p)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"phoenix\t{_dictionary('phoenix')[0]}",
                     *(f"READ\t{p}" for p in _dictionary("read"))]
    words = tmp_path / "words.txt"
    words.write_text("tandem\n\nR2D2\n")
    assert cli_main(["g2p", "--input", str(words), "--model", str(tiny_g2p)]) == 2
    assert f"{words}:3" in capsys.readouterr().err
    assert cli_main(["g2p", "tandem", "--json", "--no-stress", "--model", str(tiny_g2p)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row == {"word": "tandem", "pronunciations": [
        {"phonemes": strip_stress(_dictionary("tandem")[0]), "source": "dictionary"}]}


def test_distill_writes_the_teachers_output_for_every_line(tiny_g2p, tmp_path, capsys):
    data = tmp_path / "train.tsv"
    data.write_text("CAT\tK AE1 T\nDOG\tD AO1 G\nCAT\tK AE1 T\n")
    out = tmp_path / "distilled.tsv"
    assert cli_main(["distill", "--teacher", str(tiny_g2p), str(tiny_g2p), "--data",
                     str(data), "--out", str(out), "--beam", "2"]) == 0
    lines = out.read_text().splitlines()
    assert [x.split("\t")[0] for x in lines] == ["CAT", "DOG", "CAT"]
    assert lines[0] == lines[2]  # the same source, decoded once
    single = tandem.load(tiny_g2p).translate(["CAT", "DOG"], beam=2)
    assert [x.split("\t")[1] for x in lines[:2]] == single  # an ensemble of one model twice
    bad = tmp_path / "bad.tsv"
    bad.write_text("CAT\tK AE1 T\n\tD AO1 G\n")
    assert cli_main(["distill", "--teacher", str(tiny_g2p), "--data", str(bad), "--out",
                     str(out)]) == 2
    assert "bad.tsv:2: empty source" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 3  # the earlier output is untouched


def test_distill_refuses_teachers_of_another_task(tiny_g2p, tmp_path, capsys):
    pairs = tmp_path / "other.tsv"
    pairs.write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "bca", "cab", "acb")))
    other = tmp_path / "other"
    train(from_dict({
        "name": "other", "run_dir": str(other),
        "data": {"train": str(pairs), "dev": str(pairs), "src_tokenizer": "char",
                 "tgt_tokenizer": "char"},
        "model": {"emb_size": 8, "hidden_size": 8, "dropout": 0.0},
        "train": {"max_steps": 2, "valid_every": 10**6, "valid_metric": "loss",
                  "progress": False, "threads": 1, "keep_last": 0, "tensorboard": False},
    }))
    data = tmp_path / "words.txt"
    data.write_text("CAT\nDOG\n")
    out = tmp_path / "distilled.tsv"
    for extra in (["--teacher", str(tiny_g2p), str(other / "best.pt")],
                  ["--teacher", str(tiny_g2p), "--rescore", str(other / "best.pt")]):
        assert cli_main(["distill", *extra, "--data", str(data), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{other / 'best.pt'}:" in err and "vocabular" in err
        assert not out.exists()
