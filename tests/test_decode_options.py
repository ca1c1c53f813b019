"""The decoding options: one object (DecodeConfig) built and checked by one function
(decode_options) whatever the source, one CLI flag per field with the field's own name, and,
end to end through `tandem translate` / `tandem chat`, every option changing what comes out
(each test fails if its option were ignored)."""

from __future__ import annotations

import dataclasses
import io
import re
import sys
import typing

import pytest
import torch

from tandem import checkpoint
from tandem.cli import build_parser
from tandem.cli.args import decode_overrides as _decode_options
from tandem.config import DecodeConfig, check_decode, decode_fields, decode_options
from tandem.data.vocab import UNK_ID
from tandem.decode.scoring import Scorer
from tandem.errors import ConfigError
from tandem.structures.translator import load

TEXTS = ["abc", "hello", "xy", "aaaa", "abab", "zzzzzz", "q", "abcdef", "mmnnmm", "banana"]


# --- one object, one function -------------------------------------------------------------


def _outside(f) -> object:
    """A value just outside field `f`'s Range."""
    r = f.range
    if r.ge is not None:
        return r.ge - 1 if f.type is int else r.ge - 0.5
    if r.gt is not None:
        return r.gt
    return r.le + 1


BOUNDED = [f for f in decode_fields() if f.range is not None]


@pytest.mark.parametrize("f", BOUNDED, ids=[f.name for f in BOUNDED])
def test_every_bound_is_checked_naming_the_option_and_what_is_allowed(f):
    bad = _outside(f)
    allowed = f.range.describe(f.type is int)
    with pytest.raises(ConfigError, match=rf"^decode\.{f.name} = {re.escape(repr(bad))} is "
                                          rf"not allowed: {re.escape(allowed)}$"):
        decode_options(DecodeConfig(), **{f.name: bad})
    with pytest.raises(ConfigError, match=rf"^decode\.{f.name} = "):  # the config path too
        check_decode(dataclasses.replace(DecodeConfig(), **{f.name: bad}))


@pytest.mark.parametrize("name", ["max_len_a", "length_penalty", "coverage_penalty",
                                  "temperature"])
def test_non_finite_numbers_are_refused(name):
    with pytest.raises(ConfigError, match=rf"^decode\.{name} = inf is not allowed"):
        decode_options(DecodeConfig(), **{name: float("inf")})


def test_unknown_options_wrong_types_and_nbest_over_beam_are_refused_by_name():
    base = DecodeConfig()
    with pytest.raises(ConfigError, match=r"^unknown decoding option 'beem'; allowed: beam, "
                                          r"nbest, max_len_a"):
        decode_options(base, beem=3)
    with pytest.raises(ConfigError, match=r"^unknown decoding options 'a', 'b';"):
        decode_options(base, a=1, b=2)
    with pytest.raises(ConfigError, match=r"^decode\.beam: expected int, got '3'"):
        decode_options(base, beam="3")
    with pytest.raises(ConfigError, match=r"^decode\.length_norm: expected 'power' \| 'gnmt', "
                                          r"got 'gmnt'"):
        decode_options(base, length_norm="gmnt")
    with pytest.raises(ConfigError, match=r"^decode\.nbest = 3 is not allowed: an integer in "
                                          r"\[1, beam=2\]"):
        decode_options(base, beam=2, nbest=3)


def test_overrides_apply_none_keeps_the_base_and_ints_widen_to_floats():
    base = DecodeConfig(beam=7, length_penalty=0.3)
    got = decode_options(base, beam=None, nbest=2, temperature=2)
    assert got == dataclasses.replace(base, nbest=2, temperature=2.0)
    assert isinstance(got.temperature, float)
    assert decode_options(base) is base


def test_every_field_is_documented_and_typed():
    for f in decode_fields():
        assert f.doc, f"decode.{f.name} has no attribute docstring"
        assert f.type in (int, float, bool) or typing.get_origin(f.type) is typing.Literal


def test_the_scorer_takes_the_options_by_their_own_names():
    opts = DecodeConfig(length_penalty=0.7, length_norm="gnmt", coverage_penalty=0.2,
                        no_repeat_ngram_size=3, allow_unk=False)
    scorer = Scorer.from_options(opts)
    for f in dataclasses.fields(Scorer):
        assert getattr(scorer, f.name) == getattr(opts, f.name), f.name


def test_the_python_api_checks_its_keywords(attention_checkpoint):
    tr = load(attention_checkpoint, device="cpu")
    with pytest.raises(ConfigError, match=r"^decode\.beam = 0 is not allowed: an integer >= 1"):
        tr.translate(["abc"], beam=0)
    with pytest.raises(ConfigError, match=r"^unknown decoding option 'beem'"):
        tr.translate(["abc"], beem=2)
    with pytest.raises(ConfigError, match=r"^decode\.top_k = -1 is not allowed"):
        list(tr.stream(["abc"], top_k=-1))


# --- the CLI: a flag per field, named as the field ----------------------------------------


def _value(f):
    """A valid value of field `f` that is not its default."""
    if typing.get_origin(f.type) is typing.Literal:
        return next(v for v in typing.get_args(f.type) if v != f.default)
    if f.name == "nbest":
        return 1  # nbest is checked against the model's beam; its flag is what is tested here
    return {int: f.default + 2, float: f.default + 0.5}[f.type]


@pytest.mark.parametrize("command", ["translate", "evaluate", "serve", "chat"])
def test_every_option_has_a_flag_named_as_its_field(command):
    required = {"translate": [], "evaluate": ["--data", "x.tsv"], "serve": [], "chat": []}
    for f in decode_fields():
        if command in ("chat", "evaluate") and f.name == "nbest":
            continue  # a chat reply is one output; evaluate scores the best output
        flag = "--" + f.name.replace("_", "-")
        base = [command, "--model", "m.pt", *required[command]]
        if f.type is bool:
            for args, want in (([flag], True), (["--no-" + flag[2:]], False)):
                a = build_parser().parse_args(base + args)
                assert _decode_options(a)[f.name] is want, (flag, want)
        else:
            v = _value(f)
            a = build_parser().parse_args(base + [flag, str(v)])
            assert _decode_options(a)[f.name] == v, flag
        unset = _decode_options(build_parser().parse_args(base))
        if command != "chat":
            assert unset[f.name] is None, f"{flag} unset must keep the model's value"


def test_forbid_unk_is_the_no_allow_unk_flag():
    parse = build_parser().parse_args
    for args, want in ((["--forbid-unk"], False), (["--no-allow-unk"], False),
                       (["--allow-unk"], True), ([], None)):
        assert _decode_options(parse(["translate", "--model", "m", *args]))["allow_unk"] is want


def test_chat_samples_with_its_own_defaults_unless_told():
    parse = build_parser().parse_args
    got = _decode_options(parse(["chat", "--model", "m"]))
    assert (got["temperature"], got["top_k"]) == (0.8, 20)
    got = _decode_options(parse(["chat", "--model", "m", "--temperature", "2", "--top-k", "0"]))
    assert (got["temperature"], got["top_k"]) == (2.0, 0)


def test_a_bad_flag_value_is_a_user_error_naming_the_option(tmp_path, attention_checkpoint):
    a = build_parser().parse_args(["translate", "--model", str(attention_checkpoint),
                                   "--temperature", "0", "--input", str(tmp_path / "no")])
    (tmp_path / "no").write_text("abc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^decode\.temperature = 0\.0 is not allowed: a "
                                          r"number >= 0\.01"):
        a.func(a)


# --- every option changes the output of `tandem translate` --------------------------------


def translate(tmp_path, model, *flags: str, inputs=TEXTS) -> list[str]:
    """`tandem translate --model MODEL FLAGS` on `inputs`, run in this process: its lines."""
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("".join(f"{t}\n" for t in inputs), encoding="utf-8")
    a = build_parser().parse_args(["translate", "--model", str(model), "--input", str(src),
                                   "--output", str(out), *flags])
    assert a.func(a) == 0
    return out.read_text(encoding="utf-8").splitlines()


def lines(results, scores: bool = False) -> list[str]:
    """The lines `tandem translate` writes for these Results (n-best: INDEX TEXT SCORE)."""
    if any(len(nb) > 1 for nb in results):
        return [f"{i}\t{r.text}\t{r.score:.4f}" for i, nb in enumerate(results) for r in nb]
    return [f"{nb[0].text}\t{nb[0].score:.4f}" if scores else nb[0].text for nb in results]


@pytest.fixture(scope="module")
def unk_checkpoint(attention_checkpoint, tmp_path_factory):
    """The attention model with <unk> made likely, so that some outputs contain it."""
    ckpt = checkpoint.load(attention_checkpoint)
    ckpt["model"]["decoder.generator.bias"][UNK_ID] += 10.0
    return checkpoint.save(ckpt, tmp_path_factory.mktemp("unk") / "unk.pt")


NBEST = ("--beam", "4", "--nbest", "4")
OPTION_FLAGS = [
    (("--length-penalty", "3.0"), {"length_penalty": 3.0}),
    (("--length-penalty", "0"), {"length_penalty": 0.0}),
    (("--length-norm", "gnmt"), {"length_norm": "gnmt"}),
    (("--coverage-penalty", "10"), {"coverage_penalty": 10.0}),
    (("--no-repeat-ngram-size", "2"), {"no_repeat_ngram_size": 2}),
    (("--max-len-a", "0.5", "--max-len-b", "1"), {"max_len_a": 0.5, "max_len_b": 1}),
]


@pytest.mark.parametrize("flags, option", OPTION_FLAGS, ids=[f[0][0] for f in OPTION_FLAGS])
def test_each_ranking_option_changes_the_n_best(tmp_path, attention_checkpoint, flags, option):
    tr = load(attention_checkpoint, device="cpu")
    got = translate(tmp_path, attention_checkpoint, *NBEST, *flags)
    assert got == lines(tr.translate_full(TEXTS, beam=4, nbest=4, **option))
    assert got != lines(tr.translate_full(TEXTS, beam=4, nbest=4)), f"{flags} changed nothing"


@pytest.mark.parametrize("flag", ["--forbid-unk", "--no-allow-unk"])
def test_forbid_unk_removes_unk_from_the_outputs(tmp_path, unk_checkpoint, flag):
    plain = translate(tmp_path, unk_checkpoint, "--beam", "3")
    assert any("<unk>" in line for line in plain)  # the fixture says <unk>
    got = translate(tmp_path, unk_checkpoint, "--beam", "3", flag)
    assert not any("<unk>" in line for line in got)
    assert got == load(unk_checkpoint, device="cpu").translate(TEXTS, beam=3, allow_unk=False)


@pytest.mark.pins("translate --scores")
def test_scores_writes_each_outputs_log_probability(tmp_path, attention_checkpoint):
    want = load(attention_checkpoint, device="cpu").translate_full(TEXTS, beam=3)
    got = translate(tmp_path, attention_checkpoint, "--beam", "3", "--scores")
    assert got == lines(want, scores=True)
    assert all("\t" in line for line in got)
    assert translate(tmp_path, attention_checkpoint, "--beam", "3") == [r[0].text for r in want]


def test_quantize_decodes_with_the_int8_model(tmp_path, attention_checkpoint):
    fp32 = load(attention_checkpoint, device="cpu").translate_full(TEXTS, beam=3)
    int8 = load(attention_checkpoint, device="cpu").quantize("int8").translate_full(TEXTS,
                                                                                    beam=3)
    got = translate(tmp_path, attention_checkpoint, "--beam", "3", "--scores",
                    "--quantize", "int8")
    assert got == lines(int8, scores=True)
    assert got != lines(fp32, scores=True)  # int8 weights give other scores


def test_bf16_decodes_in_bfloat16(tmp_path, attention_checkpoint):
    tr = load(attention_checkpoint, device="cpu")
    fp32, bf16 = (tr.translate_full(TEXTS, beam=3, bf16=b) for b in (False, True))
    got = translate(tmp_path, attention_checkpoint, "--beam", "3", "--scores", "--bf16")
    assert got == lines(bf16, scores=True)
    assert got != lines(fp32, scores=True)  # bfloat16 arithmetic gives other scores


@pytest.mark.pins("translate --seed")
def test_sample_with_a_seed_repeats_and_is_not_the_search(tmp_path, attention_checkpoint):
    flags = ("--sample", "--temperature", "2.0", "--seed", "3")
    got = translate(tmp_path, attention_checkpoint, *flags)
    assert got == translate(tmp_path, attention_checkpoint, *flags)
    gen = torch.Generator().manual_seed(3)
    tr = load(attention_checkpoint, device="cpu")
    assert got == tr.translate(TEXTS, sample=True, temperature=2.0, generator=gen)
    assert got != tr.translate(TEXTS)
    other_seed = translate(tmp_path, attention_checkpoint, "--sample", "--temperature", "2.0",
                           "--seed", "4")
    assert other_seed != got


def test_top_k_limits_the_samples_of_the_cli(tmp_path, attention_checkpoint):
    """--top-k 1 sampling is the greedy search, whatever the temperature and the seed."""
    greedy = translate(tmp_path, attention_checkpoint, "--beam", "1")
    hot = ("--sample", "--temperature", "3.0", "--seed", "1")
    assert translate(tmp_path, attention_checkpoint, *hot, "--top-k", "1") == greedy
    assert translate(tmp_path, attention_checkpoint, *hot) != greedy


def test_rescore_with_another_model_ranks_by_the_mean_score(tmp_path, attention_checkpoint,
                                                             other_checkpoint):
    tr, other = load(attention_checkpoint, device="cpu"), load(other_checkpoint, device="cpu")
    plain = tr.translate_full(TEXTS, beam=4, nbest=4)
    # by hand: each candidate's mean score under both models, normalised as the search does
    scorer = Scorer.from_options(tr.decode_cfg)
    want = []
    for text, nb in zip(TEXTS, plain, strict=True):
        theirs = other.score([text] * len(nb), [r.tokens for r in nb])
        mean = [((r.score + s) / 2, r.text) for r, s in zip(nb, theirs, strict=True)]
        mean.sort(key=lambda x: -scorer.normalise(x[0], len(x[1]) + 1))
        want.append(mean)
    got = translate(tmp_path, attention_checkpoint, *NBEST, "--rescore", str(other_checkpoint))
    assert got == [f"{i}\t{t}\t{s:.4f}" for i, nb in enumerate(want) for s, t in nb]
    assert [[t for _, t in nb] for nb in want] != [[r.text for r in nb] for nb in plain], (
        "the other model must change some ranking, or a no-op would pass")


# --- chat ---------------------------------------------------------------------------------


def chat(monkeypatch, capsys, model, *flags: str, inputs=TEXTS) -> list[str]:
    """`tandem chat --model MODEL FLAGS` with `inputs` piped in, in this process: replies."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{t}\n" for t in inputs)))
    a = build_parser().parse_args(["chat", "--model", str(model), *flags])
    capsys.readouterr()
    assert a.func(a) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.pins("chat --seed")
def test_chat_sample_is_not_the_search_and_repeats_with_a_seed(monkeypatch, capsys,
                                                               attention_checkpoint):
    flags = ("--sample", "--temperature", "1.5", "--top-k", "0", "--seed", "7")
    sampled = chat(monkeypatch, capsys, attention_checkpoint, *flags)
    assert sampled == chat(monkeypatch, capsys, attention_checkpoint, *flags)
    searched = chat(monkeypatch, capsys, attention_checkpoint)
    tr = load(attention_checkpoint, device="cpu")
    assert searched == tr.translate(TEXTS, nbest=1)
    assert sampled != searched
    gen = torch.Generator().manual_seed(7)  # one generator for the whole conversation
    assert sampled == [tr.translate([t], sample=True, temperature=1.5, top_k=0, nbest=1,
                                    generator=gen)[0] for t in TEXTS]


def test_chat_uses_the_search_options(monkeypatch, capsys, attention_checkpoint):
    tr = load(attention_checkpoint, device="cpu")
    got = chat(monkeypatch, capsys, attention_checkpoint, "--beam", "3",
               "--no-repeat-ngram-size", "1")
    assert got == tr.translate(TEXTS, beam=3, nbest=1, no_repeat_ngram_size=1)
    assert got != tr.translate(TEXTS, beam=3, nbest=1)
