"""End-to-end tests of the `tandem` command. Whole runs (train, translate, evaluate, resume)
start it as a separate process, as a user does (slow); user errors and the small commands run
`tandem.cli.main` in this process, where an uncaught exception fails the test outright."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.cli import build_parser, main
from tandem.data.tasks import make_splits


def tandem(cwd: Path, *args: str, stdin: str | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "tandem.cli", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, encoding="utf-8", env=env,
                          timeout=timeout)


def assert_user_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: "), res.stderr
    for needle in needles:
        assert needle in res.stderr, (needle, res.stderr)


# --- user errors: exit code 2, one line, no traceback --------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "args", "needles"),
    [
        ("data:\n  task: reverse\nmodel:\n  hiden_size: 3\n", [],
         ["model.hiden_size", "hidden_size"]),
        ("data:\n  task: reverse\n", ["--set", "model.hidden_size=big"], ["model.hidden_size"]),
        ("data:\n  task: reverse\n", ["--set", "model.hidden_size=64", "--set",
                                      "model.dropout=1.5"], ["model.dropout"]),
    ],
    ids=["unknown-key", "wrong-type", "impossible-value"],
)
def test_config_errors_exit_2(tmp_path, cli, yaml_text, args, needles):
    (tmp_path / "c.yaml").write_text(yaml_text, encoding="utf-8")
    res = cli(tmp_path, "train", "c.yaml", *args)
    assert_user_error(res, *needles)
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_missing_config_file_exits_2(tmp_path, cli):
    assert_user_error(cli(tmp_path, "train", "nope.yaml"), "nope.yaml", "not found")


def test_translate_missing_model_exits_2(tmp_path, cli):
    res = cli(tmp_path, "translate", "--model", "missing.pt", stdin="abc\n")
    assert_user_error(res, "missing.pt")


def test_translate_empty_model_file_exits_2(tmp_path, cli):
    (tmp_path / "empty.pt").write_bytes(b"")
    res = cli(tmp_path, "translate", "--model", "empty.pt", stdin="abc\n")
    assert_user_error(res, "empty.pt")


def test_data_command_writes_three_files(tmp_path, cli):
    res = cli(tmp_path, "data", "reverse", "--out", "out", "--sizes", "50", "10", "10")
    assert res.returncode == 0, res.stderr
    sizes = {"train": 50, "dev": 10, "test": 10}
    for split, n in sizes.items():
        path = tmp_path / "out" / f"{split}.tsv"
        assert path.is_file() and f"{split}: " in res.stdout
        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == n
        for line in lines:
            src, tgt = line.split("\t")
            assert tgt == src[::-1]


def test_data_command_unknown_task_exits_2(tmp_path, cli):
    res = cli(tmp_path, "data", "shuffle", "--out", "out", "--sizes", "5", "1", "1")
    assert_user_error(res, "shuffle")


def test_bench_tag_must_be_a_plain_name(tmp_path, cli):
    """The tag becomes part of a file name: a path or blank is refused before any timing."""
    res = cli(tmp_path, "bench", "--quick", "--tag", "../x", "--out", "out")
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    assert "--tag: '../x': a tag may hold letters, digits" in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()
    assert build_parser().parse_args(["bench"]).tag is None  # no tag: the plain file name
    assert build_parser().parse_args(["bench", "--tag", "r2"]).tag == "r2"


# --- a whole run: train, translate, evaluate, resume ---------------------------------------

CONFIG = """\
name: tiny
run_dir: {run_dir}
data:
  task: reverse
  task_sizes: [600, 50, 50]
  task_max_len: 6
model:
  cell: gru
  emb_size: 16
  hidden_size: 32
train:
  max_steps: 30
  valid_every: 15
  batch_tokens: 600
  progress: false
  threads: 1
  keep_last: 1
"""


def _valid_steps(run: Path) -> list[int]:
    lines = (run / "valid.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["step"] for line in lines]


@pytest.mark.slow
def test_cli_round_trip(tmp_path, cli):
    """Train, translate and resume as separate processes, as a user runs them; the n-best
    and evaluate steps in between run in this process (the same commands, cheaper)."""
    run = tmp_path / "run"
    (tmp_path / "tiny.yaml").write_text(CONFIG.format(run_dir=run), encoding="utf-8")

    # train
    res = tandem(tmp_path, "train", "tiny.yaml")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    for name in ("best.pt", "last.pt", "config.yaml", "valid.jsonl", "train.log"):
        assert (run / name).is_file(), name
    assert str(run / "best.pt") in res.stdout
    assert _valid_steps(run) == [15, 30]
    entry = json.loads((run / "valid.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert {"loss", "exact_match", "lr", "best"} <= set(entry)

    # translate: one line out per line in, and the attention of each output
    inputs = "abc\nhello\nzyxw\n"
    res = tandem(tmp_path, "translate", "--model", str(run / "best.pt"),
                 "--attention", "att.json", stdin=inputs)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 3
    rows = json.loads((tmp_path / "att.json").read_text(encoding="utf-8"))
    assert [r["input"] for r in rows] == ["abc", "hello", "zyxw"]
    assert [r["output"] for r in rows] == res.stdout.splitlines()
    for r in rows:
        assert r["src_tokens"] == list(r["input"])
        assert r["tgt_tokens"][-1] == "</s>"
        assert r["attention"], r
        assert len(r["attention"]) <= len(r["tgt_tokens"])
        for weights in r["attention"]:
            assert len(weights) == len(r["src_tokens"])
            assert sum(weights) == pytest.approx(1.0, abs=1e-3)

    # n-best: INDEX<TAB>TEXT<TAB>SCORE, nbest lines per input
    res = cli(tmp_path, "translate", "--model", str(run / "best.pt"),
              "--nbest", "2", "--beam", "3", stdin=inputs)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 6
    cols = [line.split("\t") for line in lines]
    assert all(len(c) == 3 for c in cols), lines
    assert [c[0] for c in cols] == ["0", "0", "1", "1", "2", "2"]
    scores = [float(c[2]) for c in cols]
    assert all(s <= 0 for s in scores)  # sums of log-probabilities

    # evaluate on a test set written as TSV
    test = make_splits("reverse", (1, 1, 20), seed=7, min_len=1, max_len=6)["test"]
    (tmp_path / "test.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in test),
                                       encoding="utf-8")
    res = cli(tmp_path, "evaluate", "--model", str(run / "best.pt"), "--data", "test.tsv",
              "--json", "--beam", "2")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["sentences"] == 20
    for metric in ("exact_match", "token_acc", "token_error_rate", "bleu", "chrf"):
        assert 0.0 <= out[metric] <= 100.0, (metric, out)

    # resume with more steps: continues at step 30, validates again at 40
    res = tandem(tmp_path, "train", "--resume", str(run), "--set", "train.max_steps=40")
    assert res.returncode == 0, res.stderr
    assert _valid_steps(run) == [15, 30, 40]
    assert "resumed from" in (run / "train.log").read_text(encoding="utf-8")
    assert "max_steps: 40" in (run / "config.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("tiny")
    run = tmp / "run"
    (tmp / "tiny.yaml").write_text(CONFIG.format(run_dir=run).replace("max_steps: 30",
                                                                       "max_steps: 4"),
                                   encoding="utf-8")
    assert main(["train", str(tmp / "tiny.yaml"), "--set", "data.max_src_len=20"]) == 0
    return run / "best.pt"


def test_translate_survives_junk_input_and_says_what_it_did(tmp_path, cli, tiny_model_path):
    junk = b"abc\n\xff\xfe\x00binary\n\n   \nab\xe2\x98\x83c\n" + b"x" * 50 + b"\n"
    (tmp_path / "in.txt").write_bytes(junk)
    res = cli(tmp_path, "translate", "--model", str(tiny_model_path), "--input", "in.txt",
              "--report-unknown")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stdout.split("\n")) - 1 == 6  # one output line per input line
    assert "in.txt:2: not valid UTF-8" in res.stderr
    assert "input 5: never seen in training" in res.stderr and "'\u2603'" in res.stderr
    assert "input 6 has 50 tokens; truncated to data.max_src_len=20" in res.stderr


def test_translate_can_refuse_long_inputs(tmp_path, cli, tiny_model_path):
    res = cli(tmp_path, "translate", "--model", str(tiny_model_path), "--on-long-input",
                 "error", stdin="abc\n" + "x" * 50 + "\n")
    assert_user_error(res, "input 2 has 50 tokens", "data.max_src_len = 20")
