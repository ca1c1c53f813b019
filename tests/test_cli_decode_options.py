"""Every flag of `tandem translate`, `evaluate`, `chat`, `distill` and `serve` is honoured, run
in this process: each test compares what the command does with an independent expectation
(the Python API's result for the same option, a count or score worked out by hand, or a spy
recording what reached the decoding), so a flag the command silently ignored fails it.

The decoding flags (one per DecodeConfig field, shared by the five commands) are checked by one
parametrized test: every command, every flag, each set to a value the model's own decode
section does not hold, must reach the decoding. tests/test_decode_options.py shows what they do
to the output of `tandem translate`."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import sys
import threading
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

import tandem.serve
from structdata import config_dict, feature_data
from tandem import checkpoint
from tandem.cli import build_parser, main
from tandem.config import DecodeConfig, from_dict
from tandem.serve import Batcher
from tandem.structures.translator import Translator, load

TEXTS = ["abc", "hello", "xy", "aaaa", "abab", "zzzzzz", "q", "abcdef", "mmnnmm", "banana"]
SERVE_OTHERS = ("--host", "--port", "--beam", "--max-beam")  # pinned by tests/test_serve.py


def write_lines(path: Path, lines: list[str]) -> str:
    """Write `lines` to `path`, one per line; the path as a string."""
    path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    return str(path)


def with_decode(source: Path, dest: Path, **decode) -> Path:
    """A copy of checkpoint `source` whose config's decode section has `decode` set."""
    ckpt = checkpoint.load(source)
    ckpt["config"]["decode"].update(decode)
    return checkpoint.save(ckpt, dest)


# --- the commands, run in this process -----------------------------------------------------


def translate(tmp_path, *args: str, inputs=TEXTS) -> list[str]:
    """`tandem translate --input F --output G ARGS`: the lines of G."""
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    write_lines(src, inputs)
    a = build_parser().parse_args(["translate", "--input", str(src), "--output", str(out),
                                   *args])
    assert a.func(a) == 0
    return out.read_text(encoding="utf-8").splitlines()


def evaluate(tmp_path, capsys, *args: str, inputs=TEXTS) -> dict:
    """`tandem evaluate --data T --json ARGS` on a TSV of `inputs` and their reversals (the
    reverse task's references): its JSON object."""
    data = write_lines(tmp_path / "test.tsv", [f"{t}\t{t[::-1]}" for t in inputs])
    a = build_parser().parse_args(["evaluate", "--data", data, "--json", *args])
    capsys.readouterr()
    assert a.func(a) == 0
    return json.loads(capsys.readouterr().out)


def chat(monkeypatch, capsys, *args: str, inputs=TEXTS) -> list[str]:
    """`tandem chat ARGS` with `inputs` piped in: its replies."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{t}\n" for t in inputs)))
    a = build_parser().parse_args(["chat", *args])
    capsys.readouterr()
    assert a.func(a) == 0
    return capsys.readouterr().out.splitlines()


def distill(tmp_path, *args: str, inputs=TEXTS) -> list[tuple[str, str]]:
    """`tandem distill --data D --out O ARGS` (D: a TSV of `inputs` with a placeholder
    target): the (source, teacher output) rows of O."""
    data = write_lines(tmp_path / "train.tsv", [f"{t}\tREF" for t in inputs])
    out = tmp_path / "distilled.tsv"
    a = build_parser().parse_args(["distill", "--data", data, "--out", str(out), *args])
    assert a.func(a) == 0
    return [tuple(x.split("\t")) for x in out.read_text(encoding="utf-8").splitlines()]


def serve_app(monkeypatch, *args: str):
    """The app `tandem serve ARGS` would serve (uvicorn is not started)."""
    served = {}
    monkeypatch.setattr(tandem.serve, "serve_app",
                        lambda app, host, port: served.update(app=app, host=host, port=port))
    a = build_parser().parse_args(["serve", *args])
    assert a.func(a) == 0
    return served["app"]


def serve(monkeypatch, *args: str, inputs=TEXTS) -> list[str]:
    """`tandem serve ARGS`, then one /v1/translate request of `inputs` asking for nothing
    else: its outputs."""
    with TestClient(serve_app(monkeypatch, *args)) as c:
        r = c.post("/v1/translate", json={"inputs": list(inputs)})
    assert r.status_code == 200, r.text
    return r.json()["outputs"]


def exact_match(hyps: list[str], inputs=TEXTS) -> float:
    """Percent of outputs that are their input reversed (the evaluate data's reference)."""
    return 100.0 * sum(h == t[::-1] for h, t in zip(hyps, inputs, strict=True)) / len(inputs)


# --- --model (distill: --teacher): the model named decodes, several make an ensemble --------


@pytest.mark.pins("translate --model", "evaluate --model", "chat --model", "distill --teacher",
                  "serve --model")
def test_each_command_decodes_with_the_model_it_is_given(tmp_path, capsys, monkeypatch,
                                                         attention_checkpoint,
                                                         other_checkpoint):
    one, two = str(attention_checkpoint), str(other_checkpoint)
    runs = {
        "translate": lambda *m: translate(tmp_path, "--model", *m),
        "evaluate": lambda *m: evaluate(tmp_path, capsys, "--model", *m)["exact_match"],
        "chat": lambda *m: chat(monkeypatch, capsys, "--model", *m),
        "distill": lambda *m: [out for _, out in distill(tmp_path, "--teacher", *m)],
        "serve": lambda *m: serve(monkeypatch, "--model", *m),
    }
    for models in ([one], [two], [one, two]):
        want = load(*models, device="cpu").translate(TEXTS)
        for command, run in runs.items():
            expected = exact_match(want) if command == "evaluate" else want
            assert run(*models) == expected, (command, models)
    assert load(one).translate(TEXTS) != load(two).translate(TEXTS)  # the models differ
    assert exact_match(load(one).translate(TEXTS)) != exact_match(load(two).translate(TEXTS))


# --- every decoding flag of every command reaches the decoding ------------------------------

# (the flag and its value, the DecodeConfig field, the value it must give it, the value the
# model's decode section holds instead: a flag that were ignored leaves that one)
DECODE_FLAGS = [
    (["--beam", "3"], "beam", 3, 5),
    (["--nbest", "2"], "nbest", 2, 1),
    (["--max-len-a", "0.5"], "max_len_a", 0.5, 2.0),
    (["--max-len-b", "3"], "max_len_b", 3, 10),
    (["--length-penalty", "0.25"], "length_penalty", 0.25, 1.0),
    (["--length-norm", "gnmt"], "length_norm", "gnmt", "power"),
    (["--coverage-penalty", "0.5"], "coverage_penalty", 0.5, 0.0),
    (["--no-repeat-ngram-size", "2"], "no_repeat_ngram_size", 2, 0),
    (["--allow-unk"], "allow_unk", True, False),
    (["--no-allow-unk"], "allow_unk", False, True),
    (["--forbid-unk"], "allow_unk", False, True),
    (["--sample"], "sample", True, False),
    (["--no-sample"], "sample", False, True),
    (["--temperature", "2.5"], "temperature", 2.5, 1.0),
    (["--top-k", "3"], "top_k", 3, 0),
    (["--batch-size", "2"], "batch_size", 2, 64),
    (["--bf16"], "bf16", True, False),
    (["--no-bf16"], "bf16", False, True),
    (["--on-long-input", "error"], "on_long_input", "error", "truncate"),
]


def _flags(command: str) -> set[str]:
    """The option strings of `command`'s parser."""
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and
               isinstance(a.choices, dict))
    return {o for action in sub.choices[command]._actions for o in action.option_strings}


COMMANDS = ("translate", "evaluate", "chat", "distill", "serve")
CASES = [(command, flags, field, want, other)
         for command in COMMANDS for flags, field, want, other in DECODE_FLAGS
         if flags[0] in _flags(command)]


def _pins() -> list[str]:
    """The `COMMAND --flag` pins of the decoding-flag test (the first long spelling of each
    flag: --no-allow-unk is --allow-unk's; serve's --beam belongs to tests/test_serve.py)."""
    first = {"--no-allow-unk": "--allow-unk", "--no-sample": "--sample", "--no-bf16": "--bf16"}
    out = {f"{c} {first.get(flags[0], flags[0])}" for c, flags, *_ in CASES}
    return sorted(out - {f"serve {f}" for f in SERVE_OTHERS})


@pytest.fixture
def decode_spy(monkeypatch):
    """Every call of Translator.translate_full records (the DecodeConfig it decodes with,
    whether the model is int8, its rescoring translators), then decodes as usual."""
    seen: list[tuple[DecodeConfig, bool, list[Translator]]] = []
    real = Translator.translate_full

    def spy(self, inputs, *, opts=None, **kw):
        options = {k: v for k, v in kw.items() if k not in ("attention", "generator",
                                                              "first_number")}
        seen.append((self.options(opts, **options), self.int8, list(self.rescorers)))
        return real(self, inputs, opts=opts, **kw)

    monkeypatch.setattr(Translator, "translate_full", spy)
    return seen


def run_command(command: str, model: str, args: list[str], tmp_path, capsys, monkeypatch):
    """`tandem COMMAND` over `model` with `args` and a few short inputs."""
    inputs = TEXTS[:3]
    if command == "translate":
        translate(tmp_path, "--model", model, *args, inputs=inputs)
    elif command == "evaluate":
        evaluate(tmp_path, capsys, "--model", model, *args, inputs=inputs)
    elif command == "chat":
        chat(monkeypatch, capsys, "--model", model, *args, inputs=inputs)
    elif command == "distill":
        distill(tmp_path, "--teacher", model, *args, inputs=inputs)
    else:
        serve(monkeypatch, "--model", model, *args, inputs=inputs)


@pytest.mark.pins(*_pins())
@pytest.mark.parametrize("command, flags, field, want, other", CASES,
                         ids=[f"{c}{x[0]}" for c, x, *_ in CASES])
def test_every_decoding_flag_of_every_command_reaches_the_decoding(
        tmp_path, capsys, monkeypatch, attention_checkpoint, decode_spy, command, flags, field,
        want, other):
    model = with_decode(attention_checkpoint, tmp_path / "m.pt", **{field: other})
    run_command(command, str(model), flags, tmp_path, capsys, monkeypatch)
    assert decode_spy, "nothing was decoded"
    got = {getattr(opts, field) for opts, _, _ in decode_spy}
    assert got == {want}, f"tandem {command} {' '.join(flags)}: decoded with {field}={got}"


@pytest.mark.pins("translate --quantize", "evaluate --quantize", "distill --quantize",
                  "serve --quantize", "translate --rescore", "evaluate --rescore",
                  "distill --rescore", "serve --rescore")
@pytest.mark.parametrize("command", ["translate", "evaluate", "distill", "serve"])
def test_quantize_and_rescore_reach_the_decoding_model(tmp_path, capsys, monkeypatch,
                                                       attention_checkpoint, other_checkpoint,
                                                       decode_spy, command):
    model = str(attention_checkpoint)
    run_command(command, model, [], tmp_path, capsys, monkeypatch)
    assert {(int8, len(rescorers)) for _, int8, rescorers in decode_spy} == {(False, 0)}
    decode_spy.clear()
    run_command(command, model, ["--quantize", "int8", "--rescore", str(other_checkpoint)],
                tmp_path, capsys, monkeypatch)
    assert decode_spy
    other = checkpoint.load(other_checkpoint)["model"]
    for _, int8, rescorers in decode_spy:
        assert int8, f"tandem {command} --quantize int8 decoded with the float model"
        assert len(rescorers) == 1 and rescorers[0].int8  # the rescorer is quantized too
        # the rescorer is the --rescore checkpoint: its (int8) weights match the file's
        emb = rescorers[0].model.encoder.embed.weight
        assert torch.equal(emb, other["encoder.embed.weight"])


@pytest.mark.pins("translate --device", "evaluate --device", "chat --device",
                  "distill --device", "serve --device")
@pytest.mark.parametrize("command", COMMANDS)
def test_device_names_where_the_model_runs(tmp_path, capsys, monkeypatch, attention_checkpoint,
                                           command):
    """A device beyond any machine's GPUs is refused naming --device, before any decoding;
    --device cpu runs on the CPU."""
    args = {"translate": ["--model"], "evaluate": ["--model"], "chat": ["--model"],
            "distill": ["--teacher"], "serve": ["--model"]}[command] + [str(attention_checkpoint)]
    data = write_lines(tmp_path / "d.tsv", ["abc\tcba"])
    extra = {"translate": ["--input", data], "evaluate": ["--data", data], "chat": [],
             "distill": ["--data", data, "--out", str(tmp_path / "o.tsv")], "serve": []}
    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\n"))
    monkeypatch.setattr(tandem.serve, "serve_app", lambda app, host, port: None)
    capsys.readouterr()
    assert main([command, *args, *extra[command], "--device", "cuda:63"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device = 'cuda:63'") and err.count("\n") == 1, err
    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\n"))
    assert main([command, *args, *extra[command], "--device", "cpu"]) == 0


def test_the_decoding_flag_cases_cover_every_decoding_flag():
    """DECODE_FLAGS names every DecodeConfig field, so a new field's flag is tested too."""
    assert {field for _, field, *_ in DECODE_FLAGS} == {
        f.name for f in dataclasses.fields(DecodeConfig)}


# --- generate: the decoding flags of a language model's or generator's search ---------------

# (the flags, the DecodeConfig field, the value the search must get, the value the model's
# decode section holds instead, flags given with and without them: generation samples unless a
# beam over 1 is asked, so --sample is shown against --beam 3 alone)
GENERATE_FLAGS = [
    (["--beam", "3"], "beam", 3, 5, []),
    (["--length-penalty", "0.25"], "length_penalty", 0.25, 1.0, []),
    (["--length-norm", "gnmt"], "length_norm", "gnmt", "power", []),
    (["--no-repeat-ngram-size", "2"], "no_repeat_ngram_size", 2, 0, []),
    (["--allow-unk"], "allow_unk", True, False, []),
    (["--no-allow-unk"], "allow_unk", False, True, []),
    (["--forbid-unk"], "allow_unk", False, True, []),
    (["--sample"], "sample", True, False, ["--beam", "3"]),
    (["--no-sample"], "sample", False, True, []),
    (["--greedy"], "sample", False, True, []),
    (["--temperature", "2.5"], "temperature", 2.5, 1.0, []),
    (["--top-k", "3"], "top_k", 3, 0, []),
]
# the fields generate has no flag for (tandem.cli.predict.GENERATE_SKIPS says why)
GENERATE_SKIPPED = {"nbest", "max_len_a", "max_len_b", "coverage_penalty", "batch_size", "bf16",
                    "on_long_input"}


@pytest.fixture
def search_spy(monkeypatch):
    """Every call of tandem.decode.search.run records the DecodeConfig it searches with."""
    from tandem.decode import search

    seen: list[DecodeConfig] = []
    real = search.run

    def spy(model, src, src_len, opts, *args, **kw):
        seen.append(opts)
        return real(model, src, src_len, opts, *args, **kw)

    monkeypatch.setattr(search, "run", spy)
    return seen


@pytest.mark.pins("generate --beam", "generate --length-penalty", "generate --length-norm",
                  "generate --no-repeat-ngram-size", "generate --allow-unk",
                  "generate --forbid-unk", "generate --sample", "generate --greedy",
                  "generate --temperature", "generate --top-k")
@pytest.mark.slow  # 24 CLI runs of the trained lm and generator: in make test, not make check
@pytest.mark.parametrize("structure", ["lm", "generate"])
@pytest.mark.parametrize("flags, field, want, other, given", GENERATE_FLAGS,
                         ids=[" ".join(x) for x, *_ in GENERATE_FLAGS])
def test_every_decoding_flag_of_generate_reaches_the_search(
        tmp_path, capsys, structure_models, search_spy, structure, flags, field, want, other,
        given):
    model = with_decode(structure_models[structure], tmp_path / "m.pt", **{field: other})
    cond = ["--prompt", "the"] if structure == "lm" else ["--label", "A"]
    args = ["generate", "--model", str(model), *cond, "--max-len", "3", "--seed", "1", *given]
    assert main([*args, *flags]) == 0, capsys.readouterr().err
    assert main(args) == 0  # without the flag the search gets another value
    assert len(search_spy) == 2, "one search per command"
    assert getattr(search_spy[0], field) == want, f"tandem generate {' '.join(flags)}"
    assert getattr(search_spy[1], field) != want


def test_generate_has_a_flag_for_every_decoding_option_its_search_uses(capsys):
    """Every DecodeConfig field is a generate flag tested above or one it leaves out; a left-out
    one is refused as an unknown flag, never taken and ignored."""
    tested = {field for _, field, *_ in GENERATE_FLAGS}
    assert tested | GENERATE_SKIPPED == {f.name for f in dataclasses.fields(DecodeConfig)}
    assert not tested & GENERATE_SKIPPED
    for name in GENERATE_SKIPPED:
        flag = "--" + name.replace("_", "-")
        assert flag not in _flags("generate"), flag
        with pytest.raises(SystemExit):
            build_parser().parse_args(["generate", "--model", "m.pt", flag, "1"])
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


# --- translate -------------------------------------------------------------------------------


@pytest.mark.pins("translate --input", "translate --output")
def test_translate_reads_input_and_writes_output_instead_of_stdin_and_stdout(
        tmp_path, capsys, monkeypatch, attention_checkpoint):
    want = load(attention_checkpoint, device="cpu").translate(TEXTS)
    # stdin holds other lines: a command that ignored --input would translate them
    monkeypatch.setattr(sys, "stdin", io.StringIO("zzz\nqq\n"))
    capsys.readouterr()
    got = translate(tmp_path, "--model", str(attention_checkpoint))
    assert got == want
    assert capsys.readouterr().out == ""  # nothing on stdout: it all went to --output
    # TSV input: the first column is the text
    src = write_lines(tmp_path / "in.tsv", [f"{t}\tignored" for t in TEXTS])
    monkeypatch.setattr(sys, "stdin", io.StringIO("zzz\nqq\n"))
    assert main(["translate", "--model", str(attention_checkpoint), "--input", src]) == 0
    assert capsys.readouterr().out.splitlines() == want


@pytest.mark.pins("translate --attention")
def test_translate_attention_writes_each_outputs_weights(tmp_path, attention_checkpoint):
    want = load(attention_checkpoint, device="cpu").translate_full(TEXTS[:4], attention=True)
    path = tmp_path / "att.json"
    assert translate(tmp_path, "--model", str(attention_checkpoint), "--attention", str(path),
                     inputs=TEXTS[:4]) == [nb[0].text for nb in want]
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert [(r["index"], r["input"], r["output"]) for r in rows] == [
        (i, t, nb[0].text) for i, (t, nb) in enumerate(zip(TEXTS[:4], want, strict=True))]
    for r, nb in zip(rows, want, strict=True):
        assert r["src_tokens"] == list(r["input"])  # the reverse task reads characters
        assert r["tgt_tokens"] == nb[0].tokens + ["</s>"]
        for row, want_row in zip(r["attention"], nb[0].attention, strict=True):
            assert row == pytest.approx(want_row)
        for weights in r["attention"]:  # a distribution over the source tokens
            assert len(weights) == len(r["src_tokens"]) and sum(weights) == pytest.approx(1.0)


@pytest.mark.pins("translate --report-unknown")
def test_report_unknown_names_the_tokens_never_seen_in_training(tmp_path, tandem_log,
                                                                attention_checkpoint):
    # the reverse task's alphabet is lowercase ASCII: the snowman and the digit are unknown
    inputs = ["abc", "a\u26039b\u2603"]
    vocab = set(load(attention_checkpoint, device="cpu").fields.src_vocab.itos)
    assert {"\u2603", "9"} - vocab == {"\u2603", "9"} and set("abc") <= vocab

    def warnings() -> list[str]:
        return [r.getMessage() for r in tandem_log if "never seen in training" in r.getMessage()]

    translate(tmp_path, "--model", str(attention_checkpoint), inputs=inputs)
    assert warnings() == []
    translate(tmp_path, "--model", str(attention_checkpoint), "--report-unknown", inputs=inputs)
    assert warnings() == ["input 2: never seen in training, read as <unk>: '\u2603' '9'"]


@pytest.mark.pins("translate --progress")
def test_progress_draws_a_bar_only_when_asked(tmp_path, capsys, attention_checkpoint):
    model = str(attention_checkpoint)
    capsys.readouterr()
    translate(tmp_path, "--model", model, "--progress", inputs=TEXTS[:3])
    assert "3/3" in capsys.readouterr().err  # the bar, which counted the file's lines
    for flags in ([], ["--no-progress"]):  # stderr is no terminal: no bar unless asked
        translate(tmp_path, "--model", model, *flags, inputs=TEXTS[:3])
        assert "3/3" not in capsys.readouterr().err


@pytest.mark.pins("translate --chunk")
def test_chunk_decodes_that_many_lines_at_a_time(tmp_path, monkeypatch, attention_checkpoint):
    want = load(attention_checkpoint, device="cpu").translate(TEXTS)
    sizes = []
    real = Translator.translate_full
    monkeypatch.setattr(Translator, "translate_full", lambda self, inputs, **kw: (
        sizes.append(len(inputs)) or real(self, inputs, **kw)))
    assert translate(tmp_path, "--model", str(attention_checkpoint), "--chunk", "3") == want
    assert sizes == [3, 3, 3, 1]  # 10 lines, 3 at a time
    sizes.clear()
    assert translate(tmp_path, "--model", str(attention_checkpoint)) == want
    assert sizes == [10]  # the default chunk (1000) holds them all


@pytest.mark.pins("translate --batch-size", "translate --on-long-input")
def test_batch_size_and_on_long_input_shape_the_search(tmp_path, capsys, monkeypatch,
                                                       attention_checkpoint):
    want = load(attention_checkpoint, device="cpu").translate(TEXTS)
    widths = []
    real = Translator._search_batch
    monkeypatch.setattr(Translator, "_search_batch", lambda self, inputs, *a: (
        widths.append(len(inputs)) or real(self, inputs, *a)))
    assert translate(tmp_path, "--model", str(attention_checkpoint), "--batch-size", "3") == want
    assert sorted(widths) == [1, 3, 3, 3]  # 10 inputs, at most 3 searched together
    # the model reads at most data.max_src_len tokens: a longer input is cut, or refused
    limit = load(attention_checkpoint, device="cpu").config.data.max_src_len
    long = "ab" * limit
    assert main(["translate", "--model", str(attention_checkpoint), "--input",
                 write_lines(tmp_path / "long.txt", ["abc", long])]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["translate", "--model", str(attention_checkpoint), "--on-long-input", "error",
                 "--input", str(tmp_path / "long.txt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [x for x in err if x.startswith("error: ")] == [
        f"error: input 2 has {2 * limit} tokens, more than this model's limit "
        f"(data.max_src_len = {limit}); shorten it, or allow truncation (on_long_input: "
        "truncate)"]


# --- evaluate --------------------------------------------------------------------------------


@pytest.mark.pins("evaluate --data", "evaluate --json", "evaluate --metrics")
def test_evaluate_scores_the_data_as_json_or_lines_with_the_metrics_asked(
        tmp_path, capsys, attention_checkpoint):
    model = str(attention_checkpoint)
    hyps = load(attention_checkpoint, device="cpu").translate(TEXTS)
    res = evaluate(tmp_path, capsys, "--model", model)
    assert res["sentences"] == len(TEXTS) and res["data"] == str(tmp_path / "test.tsv")
    assert res["exact_match"] == pytest.approx(exact_match(hyps))
    assert res["seq_error_rate"] == pytest.approx(100 - exact_match(hyps))
    # other data, other score: half the references made wrong halves the exact matches
    wrong = write_lines(tmp_path / "wrong.tsv", [f"{t}\t{t[::-1] if i % 2 else 'x'}"
                                                 for i, t in enumerate(TEXTS)])
    a = build_parser().parse_args(["evaluate", "--model", model, "--data", wrong, "--json",
                                   "--metrics", "exact_match", "bleu"])
    capsys.readouterr()
    assert a.func(a) == 0
    res = json.loads(capsys.readouterr().out)
    odd = [i for i in range(len(TEXTS)) if i % 2]
    assert res["exact_match"] == pytest.approx(exact_match([hyps[i] for i in odd],
                                                           [TEXTS[i] for i in odd]) / 2)
    assert set(res) == {"model", "data", "sentences", "beam", "exact_match", "bleu"}
    # without --json: a header line, then one aligned line per metric
    assert main(["evaluate", "--model", model, "--data", wrong, "--metrics", "exact_match"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{wrong}: {len(TEXTS)} inputs ({len(TEXTS)} references)",
        f"  {'exact_match':<17}{res['exact_match']:8.2f}"]


@pytest.mark.pins("evaluate --src-suffix", "evaluate --tgt-suffix")
def test_evaluate_reads_paired_files_named_by_the_suffixes(tmp_path, capsys,
                                                           attention_checkpoint):
    hyps = load(attention_checkpoint, device="cpu").translate(TEXTS)
    prefix = tmp_path / "test"
    write_lines(tmp_path / "test.src", TEXTS)
    write_lines(tmp_path / "test.tgt", [t[::-1] for t in TEXTS])
    # a decoy reference file: the right one must be read, the others not
    write_lines(tmp_path / "test.ref", ["x"] * len(TEXTS))
    capsys.readouterr()
    args = ["evaluate", "--model", str(attention_checkpoint), "--data", str(prefix), "--json",
            "--metrics", "exact_match"]
    assert main([*args, "--src-suffix", "src", "--tgt-suffix", "tgt"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_match"] == pytest.approx(
        exact_match(hyps))
    assert main([*args, "--src-suffix", "src", "--tgt-suffix", "ref"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_match"] == 0.0
    # the sources come from --src-suffix's file: reversed sources, other outputs
    write_lines(tmp_path / "test.rev", [t[::-1] for t in TEXTS])
    assert main([*args, "--src-suffix", "rev", "--tgt-suffix", "src"]) == 0
    other = load(attention_checkpoint, device="cpu").translate([t[::-1] for t in TEXTS])
    assert json.loads(capsys.readouterr().out)["exact_match"] == pytest.approx(
        exact_match(other, [t[::-1] for t in TEXTS]))


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    """Two generate models trained for 2 steps: {"label": written from a label (config:
    240 train, 40 dev lines), "features": written from feature vectors (40 train, 20 dev
    rows)}; and the folder of the feature model's data."""
    from tandem.train.trainer import train

    root = tmp_path_factory.mktemp("generators")
    out = {"label": train(from_dict(config_dict("generate", root / "label" / "run",
                                                max_steps=2))) / "best.pt"}
    raw = config_dict("generate", root / "features" / "run", max_steps=2)
    raw["data"] = feature_data(root / "features" / "data", 40, 20)
    out["features"] = train(from_dict(raw)) / "best.pt"
    return out, root / "features" / "data"


def evaluate_json(capsys, *args: str) -> dict:
    """`tandem evaluate --json ARGS`: its JSON object."""
    capsys.readouterr()
    assert main(["evaluate", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.pins("evaluate --split")
def test_evaluate_split_scores_that_split_of_the_models_config(capsys, generators):
    models, _ = generators
    model = str(models["label"])
    for split, lines in (("train", 240), ("dev", 40)):  # structdata.data_section's sizes
        res = evaluate_json(capsys, "--model", model, "--split", split)
        assert res["items"] == lines and res["data"] == f"the {split} split of the model's config"
    assert evaluate_json(capsys, "--model", model, "--split", "train")["loss"] != \
        evaluate_json(capsys, "--model", model, "--split", "dev")["loss"]


@pytest.mark.pins("evaluate --features")
def test_evaluate_features_conditions_each_line_on_its_row(tmp_path, capsys, generators):
    import numpy as np

    models, data = generators
    model, text = str(models["features"]), str(data / "dev.txt")
    right = np.load(data / "dev.npy")
    swapped = right[:, ::-1].copy()  # label A's rows as B's: another condition, another loss
    np.save(tmp_path / "swapped.npy", swapped)
    res = evaluate_json(capsys, "--model", model, "--data", text, "--features",
                        str(data / "dev.npy"))
    assert res["items"] == len(right) == 20
    other = evaluate_json(capsys, "--model", model, "--data", text, "--features",
                          str(tmp_path / "swapped.npy"))
    assert other["items"] == 20 and other["loss"] != res["loss"]
    # the same matrix through the Python API gives the same score
    import tandem

    want = tandem.load(model).evaluate(text, str(data / "dev.npy"))
    assert res["loss"] == pytest.approx(want["loss"])


# --- distill ---------------------------------------------------------------------------------


@pytest.mark.pins("distill --data", "distill --out")
def test_distill_writes_each_source_of_data_with_the_teachers_output(tmp_path,
                                                                     attention_checkpoint):
    sources = ["abc", "hello", "abc", "xy"]
    data = write_lines(tmp_path / "pairs.tsv", [f"{s}\tREF{i}" for i, s in enumerate(sources)])
    out = tmp_path / "sub" / "kd.tsv"
    out.parent.mkdir()
    a = build_parser().parse_args(["distill", "--teacher", str(attention_checkpoint), "--data",
                                   data, "--out", str(out)])
    assert a.func(a) == 0
    teacher = load(attention_checkpoint, device="cpu").translate(sources)
    assert out.read_text(encoding="utf-8").splitlines() == [
        f"{s}\t{t}" for s, t in zip(sources, teacher, strict=True)]
    assert [p.name for p in out.parent.iterdir()] == ["kd.tsv"]  # no temporary file left


# --- serve -----------------------------------------------------------------------------------


@pytest.mark.pins("serve --max-body-bytes", "serve --max-inputs", "serve --max-chars",
                  "serve --max-queue")
def test_serve_limits_refuse_what_is_over_them(monkeypatch, attention_checkpoint):
    app = serve_app(monkeypatch, "--model", str(attention_checkpoint), "--max-inputs", "3",
                    "--max-chars", "5", "--max-body-bytes", "200", "--max-queue", "2")
    with TestClient(app) as c:
        def post(inputs: list[str]):
            return c.post("/v1/translate", json={"inputs": inputs})

        assert post(["abc", "ab"]).status_code == 200  # within every limit
        r = post(["a", "b", "c", "d"])
        assert (r.status_code, r.json()["limit"], r.json()["allowed"]) == (413, "max_inputs", 3)
        r = post(["abcdef"])
        assert (r.status_code, r.json()["limit"], r.json()["allowed"]) == (413, "max_chars", 5)
        r = c.post("/v1/translate", content=json.dumps({"inputs": ["ab"], "x": "y" * 200}),
                   headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["limit"]) == (413, "max_body_bytes")
        # 3 sentences to queue, 2 allowed: refused at once, before any decoding
        r = post(["a", "b", "c"])
        assert (r.status_code, r.json()["limit"], r.json()["allowed"]) == (503, "max_queue", 2)


def decoded_batches(app, groups: list[list[str]], then: list[str] | None = None,
                    ready=None) -> list[int]:
    """Drive the batcher of `app` (a `tandem serve` app) directly: queue one job per group of
    `groups` before it starts, then, once `ready` (an asyncio.Event, if given) is set, the
    job `then`. The number of sentences of each decode call, in order."""
    batcher: Batcher = app.state.batcher
    sizes: list[int] = []
    real = batcher.model.translate_full
    batcher.model.translate_full = lambda texts, **kw: (sizes.append(len(texts)) or
                                                             real(texts, **kw))
    key = (batcher.model.decode_cfg, False)

    async def drive():
        jobs = [asyncio.ensure_future(batcher.submit(g, key)) for g in groups]
        await asyncio.sleep(0)  # a turn of the loop, no time: every job is queued
        runner = asyncio.ensure_future(batcher.run())
        try:
            if then is not None:
                await asyncio.wait_for(ready.wait(), 60)  # the timeout only bounds the wait
                jobs.append(asyncio.ensure_future(batcher.submit(then, key)))
            return await asyncio.wait_for(asyncio.gather(*jobs), 60)
        finally:
            runner.cancel()

    try:
        results = asyncio.run(drive())
    finally:
        batcher.worker.shutdown(wait=True)
    texts = [t for g in [*groups, *([then] if then else [])] for t in g]
    assert [nb[0].source for r in results for nb in r] == texts  # each job got its own
    return sizes


@pytest.mark.pins("serve --max-batch", "serve --no-batching")
def test_serve_batches_queued_requests_up_to_max_batch_unless_told_not_to(
        monkeypatch, attention_checkpoint):
    model = str(attention_checkpoint)
    five = [[t] for t in TEXTS[:5]]
    # --max-wait-ms 0: only what is queued already joins a batch (no clock involved)
    assert decoded_batches(serve_app(monkeypatch, "--model", model, "--max-wait-ms", "0"),
                           five) == [5]
    assert decoded_batches(serve_app(monkeypatch, "--model", model, "--max-wait-ms", "0",
                                     "--max-batch", "2"), five) == [2, 2, 1]
    assert decoded_batches(serve_app(monkeypatch, "--model", model, "--max-wait-ms", "0",
                                     "--max-batch", "3"), [["a", "b"], ["c", "d"]]) == [2, 2]
    assert decoded_batches(serve_app(monkeypatch, "--model", model, "--no-batching"),
                           five) == [1, 1, 1, 1, 1]


@pytest.mark.pins("serve --max-wait-ms")
def test_serve_max_wait_ms_is_how_long_a_batch_waits_for_company(monkeypatch,
                                                                 attention_checkpoint):
    app = serve_app(monkeypatch, "--model", str(attention_checkpoint), "--max-wait-ms", "60000",
                    "--max-batch", "2")
    batcher: Batcher = app.state.batcher
    waits: list[float] = []
    ready = asyncio.Event()
    real = batcher._next

    async def spy(timeout):
        if timeout is not None:  # the first job is in: now it waits for company
            waits.append(timeout)
            ready.set()
        return await real(timeout)

    batcher._next = spy
    # the second request comes only once the first is waiting: with a 60 s window it joins
    assert decoded_batches(app, [["abc"]], then=["hello"], ready=ready) == [2]
    assert 50 < waits[0] <= 60, waits  # the window is the flag's, less the time spent since


@pytest.mark.pins("serve --timeout")
def test_serve_timeout_answers_503_when_the_decode_takes_longer(monkeypatch,
                                                                attention_checkpoint):
    app = serve_app(monkeypatch, "--model", str(attention_checkpoint), "--timeout", "0.5")
    release = threading.Event()
    # a decode that does not finish until released: only the timeout can answer the request
    app.state.batcher.model.translate_full = lambda texts, **kw: release.wait(30) and []
    try:
        with TestClient(app) as c:
            r = c.post("/v1/translate", json={"inputs": ["abc"]})
    finally:
        release.set()
    assert r.status_code == 503, r.text
    assert (r.json()["limit"], r.json()["allowed"]) == ("timeout_s", 0.5)


@pytest.mark.parametrize("structure", ["lm", "generate"])
def test_serve_decoding_flags_are_a_generating_models_request_defaults(
        structure, structure_models, capsys, monkeypatch):
    """`tandem serve` over a language model or generator: its decoding flags become the
    defaults its /v1/generate schema states and a request without them gets; the options its
    generation never reads are refused by name."""
    model = str(structure_models[structure])
    app = serve_app(monkeypatch, "--model", model, "--temperature", "0.5", "--top-k", "3",
                    "--no-repeat-ngram-size", "2")
    fields = app.openapi()["components"]["schemas"]["GenerateRequest"]["properties"]
    assert (fields["temperature"]["default"], fields["top_k"]["default"],
            fields["no_repeat_ngram_size"]["default"]) == (0.5, 3, 2)
    seen = []
    pred = app.state.batcher.model
    real = pred.write
    pred.write = lambda items, opts, seed: seen.append(opts) or real(items, opts, seed)
    with TestClient(app) as c:
        r = c.post("/v1/generate", json={"inputs": [""] if structure == "lm" else ["A"],
                                         "max_len": 5, "seed": 1})
    assert r.status_code == 200, r.text
    assert (seen[0].temperature, seen[0].top_k, seen[0].no_repeat_ngram_size, seen[0].sample) \
        == (0.5, 3, 2, True)
    capsys.readouterr()
    assert main(["serve", "--model", model, "--nbest", "2", "--coverage-penalty", "0.2"]) == 2
    assert capsys.readouterr().err == (
        f"error: --nbest, --coverage-penalty: {model} is a {structure} model, whose generation "
        "does not use them (leave them out)\n")


def test_generate_skips_the_options_generation_never_reads():
    from tandem.cli.predict import GENERATE_SKIPS
    from tandem.verbs import UNUSED_OPTIONS

    assert set(GENERATE_SKIPS) == UNUSED_OPTIONS


@pytest.mark.pins("serve --max-new-tokens")
def test_serve_max_new_tokens_bounds_a_generate_request(monkeypatch, generators):
    models, _ = generators
    app = serve_app(monkeypatch, "--model", str(models["label"]), "--max-new-tokens", "7")
    with TestClient(app) as c:
        ok = c.post("/v1/generate", json={"inputs": ["A"], "max_len": 7, "seed": 1})
        over = c.post("/v1/generate", json={"inputs": ["A"], "max_len": 8, "seed": 1})
    assert ok.status_code == 200, ok.text
    assert (over.status_code, over.json()["field"]) == (422, "max_len")


@pytest.mark.pins("evaluate --split")
def test_evaluate_without_data_scores_the_split_of_a_seq2seq_models_config(
        attention_checkpoint, tmp_path, capsys):
    """A seq2seq model's own task, corpus or files are its default test set, as for the
    other structures: the same scores as that split written to a TSV and given as --data."""
    from tandem.data.dataset import load_splits

    dev = load_splits(load(attention_checkpoint).config.data).dev
    tsv = tmp_path / "dev.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in dev), encoding="utf-8")
    model = str(attention_checkpoint)
    capsys.readouterr()
    assert main(["evaluate", "--model", model, "--split", "dev", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", model, "--data", str(tsv), "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert own.pop("data") == "the dev split of the model's config"
    given.pop("data")
    assert own == given and own["sentences"] == len({s for s, _ in dev}) > 0


@pytest.mark.parametrize("command, structure", [("evaluate", "classify"),
                                                ("evaluate", "generate"),
                                                ("serve", "classify"), ("serve", "tag")])
def test_decoding_flags_are_refused_for_a_model_of_another_structure(
        command, structure, structure_models, capsys, monkeypatch):
    """A classifier or tagger has no search, and evaluating a language model or generator
    scores the references teacher forced: decoding flags would change nothing there, so they
    are refused by name instead of being ignored."""
    served = []
    monkeypatch.setattr(tandem.serve, "serve_app", lambda *args: served.append(args))
    model = str(structure_models[structure])
    capsys.readouterr()
    assert main([command, "--model", model, "--beam", "3", "--length-penalty", "1.0"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --beam, --length-penalty: decoding flags of a model that translates; "
                   f"{model} is a {structure} model, which they do not change (leave them out)\n")
    assert not served
    rest = ["--split", "dev"] if command == "evaluate" else []  # its config has no test split
    assert main([command, "--model", model, *rest]) == 0  # without them it runs
    assert len(served) == (command == "serve")
