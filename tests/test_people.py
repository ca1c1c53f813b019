"""What people look at, through the commands they type (run in this process): chat, the
attention picture, training curves, scalars.csv and TensorBoard event files, and the
chatterbot corpus."""

import csv
from pathlib import Path

import pytest

from tandem.structures.translator import load


@pytest.fixture
def run_cli(cli, tmp_path):
    """`run_cli(*args, stdin=..., cwd=...)`: `tandem ARGS` as people type it, run in this
    process (tests/test_cli.py runs whole processes)."""

    def run(*args: str, stdin: str | None = None, cwd: Path | None = None):
        return cli(cwd or tmp_path, *args, stdin=stdin or "")

    return run


def test_chat_piped_answers_each_line_until_quit_without_prompts(run_cli, attention_checkpoint):
    tr = load(attention_checkpoint)
    res = run_cli("chat", "--model", str(attention_checkpoint), "--beam", "3",
                  stdin="hello\n\nabc\n/quit\nnever read\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == tr.translate(["hello", "abc"], beam=3)
    assert ">" not in res.stderr and "Traceback" not in res.stderr


def test_chat_sampling_is_repeatable_with_a_seed(run_cli, attention_checkpoint):
    args = ("chat", "--model", str(attention_checkpoint), "--sample", "--temperature", "1.5",
            "--top-k", "5", "--seed", "7")
    lines = "".join(f"{w}\n" for w in ["hello", "abc", "xyz", "hello"])
    first, second = run_cli(*args, stdin=lines), run_cli(*args, stdin=lines)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and len(first.stdout.splitlines()) == 4


def test_plot_attention_writes_a_png(run_cli, attention_checkpoint, tmp_path):
    out = tmp_path / "attn.png"
    res = run_cli("plot-attention", "--model", str(attention_checkpoint), "--input", "hello",
                  "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 2000
    bad = run_cli("plot-attention", "--model", str(attention_checkpoint), "--input", "hello",
                  "--out", str(tmp_path / "nope" / "a.png"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_training_writes_scalars_csv_and_tensorboard_events(run_cli, attention_checkpoint,
                                                           tmp_path):
    run = attention_checkpoint.parent
    with open(run / "scalars.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tags = {r["tag"] for r in rows}
    assert {"train/loss", "train/ppl", "train/lr", "train/tokens_per_s", "dev/loss",
            "dev/exact_match"} <= tags
    assert [int(r["step"]) for r in rows if r["tag"] == "dev/loss"] == [100, 200]
    losses = [float(r["value"]) for r in rows if r["tag"] == "train/loss"]
    assert losses[-1] < losses[0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("dev/loss")] == [100, 200]
    assert acc.Scalars("dev/loss")[-1].value == pytest.approx(
        float([r for r in rows if r["tag"] == "dev/loss"][-1]["value"]), rel=1e-4)
    out = tmp_path / "curves.png"
    res = run_cli("plot-run", str(run), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
    res = run_cli("plot-run", str(tmp_path), "--out", str(tmp_path / "x.png"))
    assert res.returncode == 2 and "no scalars.csv" in res.stderr


def test_resume_drops_scalars_logged_after_the_checkpoint(tmp_path):
    from tandem.train.scalars import Scalars, read

    s = Scalars(tmp_path, 0, tensorboard=False)
    for step in (10, 20, 30):
        s.add(step, float(step), {"train/loss": 1.0 / step})
    s.close()
    with open(tmp_path / "scalars.csv", "a") as f:
        f.write("4")  # a line torn by kill -9
    Scalars(tmp_path, 20, tensorboard=False).close()
    assert [st for st, _ in read(tmp_path / "scalars.csv")["train/loss"]] == [10, 20]
    lines = (tmp_path / "scalars.csv").read_text().splitlines()
    assert lines[0] == "step,elapsed_s,tag,value" and len(lines) == 3  # the torn line is gone


def test_chatterbot_corpus_pairs_follow_the_conversations():
    from tandem.data.chatterbot import conversations, pairs_split

    convs = conversations()
    train, dev = pairs_split()
    assert len(train) + len(dev) == sum(len(c) - 1 for c in convs)
    assert all(isinstance(a, str) and a and b for a, b in train + dev)
    first = convs[0]
    assert train[0] == (first[0], first[1])
    held_out = [p for c in convs[19::20] for p in zip(c[:-1], c[1:], strict=True)]
    assert dev == held_out and 50 < len(dev) < len(train) / 10


def test_chatterbot_yaml_scalars_stay_text(tmp_path):
    from tandem.data.chatterbot import conversations

    (tmp_path / "b.yml").write_text("conversations:\n- - Are you there?\n  - Yes\n  - 42\n"
                                    "  - null\n- - lonely\n", encoding="utf-8")
    (tmp_path / "a.yml").write_text("conversations:\n- - Hi\n  - \"Hello\tthere  \"\n",
                                    encoding="utf-8")
    assert conversations(root=tmp_path) == [["Hi", "Hello there"],
                                            ["Are you there?", "Yes", "42", "null"]]


def test_translating_a_file_shows_progress_and_speed(run_cli, attention_checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text("abc\nhello\nxy\n", encoding="utf-8")
    res = run_cli("translate", "--model", str(attention_checkpoint), "--input", "in.txt",
                  "--output", "out.txt", "--progress", "--chunk", "2", "--forbid-unk",
                  "--no-repeat-ngram-size", "2", "--length-norm", "gnmt", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "translated 3 lines" in res.stderr and "output tokens/s" in res.stderr
    assert "3/3" in res.stderr  # the bar knew the total
    want = load(attention_checkpoint).translate(["abc", "hello", "xy"], allow_unk=False,
                                                no_repeat_ngram_size=2, length_norm="gnmt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines() == want
