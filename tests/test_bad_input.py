"""Bad input to the `tandem` command gets one clear line and exit code 2 (issue 28, item 3).

Each test runs `tandem.cli.main` in-process and holds the message to one line that names the
file, line, flag or field at fault and says what is allowed, with no traceback. Where the
command would start something (a server, torchrun, a training run), the test also shows that
it did not.
"""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from structdata import config_dict, feature_data  # tests/structdata.py
from tandem.cli import main


@pytest.fixture(autouse=True)
def _log_to_this_tests_stderr():
    """`tandem.cli.main` gives the "tandem" logger its stderr handler once per process, bound to
    the stderr of that moment: an earlier test's captured stream, closed by now (each write
    would print a logging traceback). Each test here starts without it; what was there is put
    back after."""
    logger = logging.getLogger("tandem")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers.clear()
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def user_error(capsys, argv: list[str], *needles: str) -> str:
    """Run `tandem ARGV`; assert exit code 2, no traceback, and that the last thing on stderr
    is a single `error: ...` line (a message with a line break in it would leave its tail
    after that line) holding every needle. Returns the message."""
    rc = main([str(x) for x in argv])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert err.endswith(errors[0] + "\n"), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def feed_stdin(monkeypatch, text: str) -> None:
    """Make `text` the command's stdin (read as bytes through sys.stdin.buffer)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")),
                                                       encoding="utf-8"))


def train_tiny(root: Path, raw: dict) -> Path:
    """`tandem train` a config for 2 steps (enough to write a checkpoint); its best.pt."""
    raw["train"].update(max_steps=2, valid_every=2)
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["train", str(cfg)]) == 0
    return Path(raw["run_dir"]) / "best.pt"


@pytest.fixture(scope="module")
def feature_generator(tmp_path_factory) -> Path:
    """A generator conditioned on feature vectors of 2 numbers (no session fixture has one)."""
    root = tmp_path_factory.mktemp("features")
    raw = config_dict("generate", root / "run")
    raw["data"] = feature_data(root / "data", 40, 10)
    return train_tiny(root, raw)


@pytest.fixture(scope="module")
def sp_classifier(tmp_path_factory) -> Path:
    """A classifier reading sentencepiece tokens: its tokenizer drops zero-width and control
    characters, so a line of them is empty after tokenization though not blank."""
    root = tmp_path_factory.mktemp("sp")
    raw = config_dict("classify", root / "run")
    raw["data"].update(src_tokenizer="sentencepiece", sp_vocab_size=12)
    return train_tiny(root, raw)


# --- --input naming a file that is not there -----------------------------------------------


@pytest.mark.pins("translate --input", "predict --input", "g2p --input")
@pytest.mark.parametrize("command", ["translate", "predict", "g2p"])
def test_input_naming_a_missing_file_is_refused_before_any_model_loads(
        command, tmp_path, monkeypatch, capsys):
    # the model is missing too: an error about --input, not the model, shows the input is
    # checked first (a mistyped name fails at once) and that --input is read at all (without
    # it the command would read stdin and fail on the model)
    feed_stdin(monkeypatch, "abc\n")
    missing = tmp_path / "nope.txt"
    msg = user_error(capsys, [command, "--model", tmp_path / "missing.pt", "--input", missing],
                     f"--input {missing}: file not found", "leave --input out to read stdin")
    assert "missing.pt" not in msg


def test_plot_attention_input_is_text_and_empty_text_is_refused(attention_checkpoint,
                                                                tmp_path, capsys):
    # plot-attention's --input is the text itself, not a file; text that tokenizes to nothing
    # has no attention to draw, and no image is written
    out = tmp_path / "att.png"
    user_error(capsys, ["plot-attention", "--model", attention_checkpoint, "--input", " \t ",
                        "--out", out], "--input ' \\t '", "empty after tokenization",
               "nothing to draw")
    assert not out.exists()


# --- predict: empty lines, and lines empty after tokenization ------------------------------


@pytest.mark.parametrize(("structure", "text", "bad_line", "item"), [
    ("classify", "abc\nxab\n\ncab\n", 3, "text to classify"),
    ("tag", "ab cd\n \t \nab\n", 2, "sentence to tag"),
], ids=["classify-empty", "tag-whitespace-only"])
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_predict_refuses_an_empty_line_naming_its_file_and_line(
        structure_models, structure, text, bad_line, item, source, tmp_path, monkeypatch,
        capsys):
    args = ["predict", "--model", structure_models[structure], "--chunk", "1"]
    if source == "file":
        path = tmp_path / "in.txt"
        path.write_text(text, encoding="utf-8")
        args += ["--input", path]
        where = str(path)
    else:
        feed_stdin(monkeypatch, text)
        where = "<stdin>"
    user_error(capsys, args, f"{where}:{bad_line}: empty line",
               f"each line must hold one {item}")


def test_predict_refuses_a_line_empty_after_tokenization_naming_its_line(
        sp_classifier, tmp_path, capsys):
    from tandem import load

    fields = load(sp_classifier).fields
    # the premise, checked: the tokenizer keeps the letters and drops a zero-width space
    assert fields.encode_text("abc") and not fields.encode_text("\u200b\u200b")
    path = tmp_path / "in.txt"
    path.write_text("abc\ncab\n\u200b\u200b\nabc\n", encoding="utf-8")
    # --chunk 1: the predictor alone would count the line within its one-line chunk ("input 1")
    user_error(capsys, ["predict", "--model", sp_classifier, "--input", path, "--chunk", "1"],
               f"{path}:3: empty after tokenization", "sentencepiece tokenizer",
               "each line must hold one text to classify")


def test_translate_writes_an_empty_line_for_input_empty_after_tokenization(
        attention_checkpoint, monkeypatch, capsys):
    """The decision for translate (docs/reliability.md): an input with no tokens (blank, or
    spaces and tabs only) is no error but an empty output line in its place, so that outputs
    stay aligned with inputs; the other lines are translated as on their own."""
    from tandem.structures.translator import load

    feed_stdin(monkeypatch, "abc\n \t \ncba\n\n")
    assert main(["translate", "--model", str(attention_checkpoint)]) == 0
    out = capsys.readouterr().out
    alone = load(attention_checkpoint).translate(["abc", "cba"])
    assert all(alone)  # the model writes something for real input, so "" below is the rule
    assert out.split("\n") == [alone[0], "", alone[1], "", ""]


# --- generate / evaluate --features --------------------------------------------------------


def bad_feature_files(folder: Path) -> dict[str, Path]:
    """Files that are not an (N, 2) number matrix in .npy format, by what is wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"text": folder / "rows.txt", "npz": folder / "two.npz",
             "3-columns": folder / "wide.npy", "1-d": folder / "flat.npy",
             "strings": folder / "words.npy", "missing": folder / "absent.npy"}
    files["text"].write_text("1 0\n0 1\n", encoding="utf-8")
    np.savez(files["npz"], a=np.eye(2), b=np.eye(2))
    np.save(files["3-columns"], np.ones((2, 3), np.float32))
    np.save(files["1-d"], np.ones(2, np.float32))
    np.save(files["strings"], np.array([["a", "b"], ["c", "d"]]))
    return files


FEATURE_PROBLEMS = {"text": "not a .npy file", "npz": "not a .npy file",
                    "3-columns": "an array of shape (2, 3) (float32)",
                    "1-d": "an array of shape (2,) (float32)",
                    "strings": "an array of shape (2, 2) (<U1)",
                    "missing": "file not found"}


@pytest.mark.pins("generate --features")
@pytest.mark.parametrize("kind", list(FEATURE_PROBLEMS))
def test_generate_refuses_features_that_are_not_an_npy_matrix_of_the_model_width(
        feature_generator, kind, tmp_path, capsys):
    path = bad_feature_files(tmp_path)[kind]
    # the model reads rows of 2 numbers: the message says so, whatever was wrong
    user_error(capsys, ["generate", "--model", feature_generator, "--features", path],
               f"--features {path}: {FEATURE_PROBLEMS[kind]}", "(N, 2) matrix")


def test_generate_features_and_labels_go_to_the_generator_that_reads_them(
        structure_models, feature_generator, tmp_path, capsys):
    good = tmp_path / "good.npy"
    np.save(good, np.eye(2, dtype=np.float32))
    user_error(capsys, ["generate", "--model", structure_models["generate"], "--features",
                        good], f"--features {good}: this generator writes from a label",
               "give --label (one of A, B)")
    user_error(capsys, ["generate", "--model", feature_generator, "--label", "A"],
               "--label: this generator writes from feature vectors of 2 numbers",
               "give --features")
    # and the good matrix is accepted: one output per row
    assert main(["generate", "--model", str(feature_generator), "--features", str(good),
                 "--max-len", "3", "--seed", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split("\t")[0] for r in rows] == ["row 0", "row 1"]


@pytest.mark.pins("evaluate --features")
@pytest.mark.parametrize(("kind", "problem"), [
    ("text", "not a .npy array file; save the matrix with numpy.save"),
    ("3-columns", "has 3 features per row but the model reads 2"),
    ("1-d", "a feature matrix has 2 dimensions (rows, features); this one has shape (2,)"),
    ("strings", "features must be numbers"),
    ("missing", "file not found"),
])
def test_evaluate_refuses_features_that_are_not_an_npy_matrix_of_the_model_width(
        feature_generator, kind, problem, tmp_path, capsys):
    path = bad_feature_files(tmp_path)[kind]
    data = tmp_path / "lines.txt"
    data.write_text("abc\nxyz\n", encoding="utf-8")
    user_error(capsys, ["evaluate", "--model", feature_generator, "--data", data,
                        "--features", path], str(path), problem)


def test_evaluate_features_are_never_silently_ignored(attention_checkpoint, structure_models,
                                                      feature_generator, tmp_path, capsys):
    good = tmp_path / "good.npy"
    np.save(good, np.eye(2, dtype=np.float32))
    data = tmp_path / "pairs.tsv"
    data.write_text("abc\tcba\n", encoding="utf-8")
    # on a model that reads no features, and without the --data its rows belong to
    user_error(capsys, ["evaluate", "--model", attention_checkpoint, "--data", data,
                        "--features", good],
               f"--features: {attention_checkpoint} is a seq2seq model",
               "for a generator conditioned on feature vectors")
    user_error(capsys, ["evaluate", "--model", structure_models["classify"], "--features",
                        good], "is a classify model")
    user_error(capsys, ["evaluate", "--model", feature_generator, "--features", good],
               f"--features {good}: give --data too")


# --- generate: --prompt to a generator, --label to a language model ------------------------


@pytest.mark.pins("generate --prompt", "generate --label")
@pytest.mark.parametrize(("structure", "flag", "needles"), [
    ("generate", "--prompt", ["--prompt is for a language model",
                              "a conditional generator writes from --label (or --features)"]),
    ("lm", "--label", ["--label and --features are for a conditional generator",
                       "a language model continues --prompt"]),
])
def test_generate_refuses_the_other_structures_flag(structure_models, structure, flag, needles,
                                                    capsys):
    user_error(capsys, ["generate", "--model", structure_models[structure], flag, "A",
                        "--max-len", "3"], "tandem generate: ", *needles)


# --- train: no config, --resume nowhere, --nproc 0, a corpus folder that is not there --------


def test_train_without_a_config_or_a_run_says_what_to_give(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    user_error(capsys, ["train"], "tandem train: give a config file, or --resume RUN_DIR")
    user_error(capsys, ["train", "--resume", "runs/none"],
               "--resume runs/none: not a run folder (no config.yaml in it)")
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.pins("train --nproc")
@pytest.mark.parametrize("nproc", ["0", "-2"])
def test_train_refuses_fewer_than_one_rank_before_starting_anything(nproc, tmp_path,
                                                                    monkeypatch, capsys):
    from tandem.train import distributed

    def no_launch(*args, **kwargs):
        raise AssertionError(f"torchrun was started: {args}")

    monkeypatch.setattr(distributed.subprocess, "call", no_launch)
    run = tmp_path / "run"
    raw = {"name": "nproc", "run_dir": str(run),
           "data": {"task": "reverse", "task_sizes": [20, 5, 5], "task_max_len": 4},
           "model": {"emb_size": 8, "hidden_size": 8},
           "train": {"max_steps": 1, "progress": False, "threads": 1}}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    # a valid config: were --nproc ignored, this would train and exit 0
    user_error(capsys, ["train", cfg, "--nproc", nproc], f"--nproc {nproc}: give at least 1")
    assert not run.exists()


# (corpus, structure, the file the corpus reads first)
CORPORA = [
    ("sst2", "classify", "stsa.binary.train"),
    ("names", "classify", ""),
    ("names", "generate", ""),
    ("ud_ewt", "tag", "en_ewt-ud-train.conllu.gz"),
    ("tinyshakespeare", "lm", "input.txt"),
    ("cmudict", "seq2seq", "cmudict.g014b2b.train"),
]


@pytest.mark.pins("data.corpus_dir", "data.corpus")
@pytest.mark.parametrize(("corpus", "structure", "first_file"), CORPORA,
                         ids=[f"{c}-{s}" for c, s, _ in CORPORA])
def test_a_corpus_dir_pointing_nowhere_names_the_folder_and_the_key(
        corpus, structure, first_file, tmp_path, monkeypatch, capsys):
    # run from an empty folder, so that the default ../shared/data/<corpus> is not there
    # either: a message naming the given folder shows data.corpus_dir was read
    monkeypatch.chdir(tmp_path)
    nowhere = tmp_path / "nowhere"
    raw = {"name": corpus, "run_dir": str(tmp_path / "run"),
           "data": {"corpus": corpus, "corpus_dir": str(nowhere)},
           "model": {"structure": structure, "emb_size": 8, "hidden_size": 8},
           "train": {"max_steps": 1, "progress": False, "threads": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    user_error(capsys, ["train", "c.yaml"], f"{nowhere / first_file}: ",
                     "not found; set data.corpus_dir to the folder holding")
    assert not (tmp_path / "run" / "best.pt").exists()


# --- a corrupt checkpoint --------------------------------------------------------------------


def corrupt_copies(good: Path, folder: Path) -> dict[str, Path]:
    """Broken copies of a good checkpoint: cut to its first KiB (an interrupted copy), its
    bytes scrambled, one weight changed after saving (the checksum no longer matches)."""
    data = good.read_bytes()
    files = {"truncated": folder / "truncated.pt", "scrambled": folder / "scrambled.pt",
             "edited": folder / "edited.pt"}
    files["truncated"].write_bytes(data[:1024])
    files["scrambled"].write_bytes(bytes(b ^ 0x5A for b in data))
    ckpt = torch.load(good, map_location="cpu", weights_only=True)
    name = next(iter(ckpt["model"]))
    ckpt["model"][name] = ckpt["model"][name] + 1.0
    torch.save(ckpt, files["edited"])
    return files


CORRUPTION = {"truncated": "not a readable tandem checkpoint",
              "scrambled": "needs code to load, which tandem never runs, or is corrupted",
              "edited": "the weights do not match the checkpoint's checksum"}


@pytest.mark.parametrize("kind", list(CORRUPTION))
@pytest.mark.parametrize("command", ["serve", "translate", "predict", "generate", "evaluate"])
def test_a_corrupt_checkpoint_is_one_line_naming_the_file_and_nothing_is_served(
        attention_checkpoint, command, kind, tmp_path, monkeypatch, capsys):
    import uvicorn

    import tandem.serve

    def no_server(*args, **kwargs):
        raise AssertionError("a server was started on a corrupt checkpoint")

    for target, name in ((tandem.serve, "serve"), (tandem.serve, "serve_app"),
                         (uvicorn, "run")):
        monkeypatch.setattr(target, name, no_server)
    feed_stdin(monkeypatch, "abc\n")
    bad = corrupt_copies(attention_checkpoint, tmp_path)[kind]
    data = tmp_path / "test.tsv"
    data.write_text("abc\tcba\n", encoding="utf-8")
    extra = ["--data", data] if command == "evaluate" else []
    msg = user_error(capsys, [command, "--model", bad, *extra], f"error: {bad}: ",
                     CORRUPTION[kind])
    # torch's paragraphs of advice after the reason (an "internal miniz error" and what may
    # have caused it) are cut: the reason is the first sentence
    assert len(msg.replace(str(bad), "FILE")) < 200, msg
