"""Every flag of `tandem train | predict | generate | average | g2p | bench | data |
plot-attention | plot-run` changes what the command does. Each test runs the command in-process
(`tandem.cli.main`) and compares what it did with an independent expectation: the Python API
given the same option, a rule the output must follow, or a spy on the function the flag must
reach; where an option could be ignored without changing the output, the test first shows that
the option does change it. The flags each test pins are named in its `pins` mark
(tests/test_option_coverage.py holds every flag to one)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tandem
from conftest import run_config
from structdata import classify_lines, config_dict, feature_data, write
from tandem import checkpoint
from tandem.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _config_file(folder: Path, **train) -> str:
    """A config file for a 2-step run on `reverse` into folder/run; `train` overrides the
    train section."""
    raw = run_config(folder / "run", "tiny", {"cell": "gru", "emb_size": 8, "hidden_size": 16},
                     **{"max_steps": 2, "valid_every": 2, "keep_last": 1, "tensorboard": False,
                        **train})
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def _valid_steps(run: Path) -> list[int]:
    """The steps at which the run in `run` validated (its valid.jsonl)."""
    lines = (run / "valid.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["step"] for line in lines]


# --- train ---------------------------------------------------------------------------------


@pytest.mark.pins("train <config>", "train --overwrite")
def test_train_runs_its_config_and_replaces_an_earlier_run_only_with_overwrite(tmp_path,
                                                                              capsys):
    cfg = _config_file(tmp_path)
    run = tmp_path / "run"
    assert main(["train", cfg]) == 0
    assert checkpoint.load(run / "best.pt")["train_state"]["step"] == 2  # the file's max_steps
    assert _valid_steps(run) == [2]
    capsys.readouterr()
    assert main(["train", cfg]) == 2  # an earlier run is never replaced silently
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", cfg, "--overwrite"]) == 0
    assert _valid_steps(run) == [2]  # a new run's log, not the old one's continued


@pytest.mark.pins("train --resume")
def test_train_resume_continues_the_run_in_the_folder(tmp_path):
    run = tmp_path / "run"
    assert main(["train", _config_file(tmp_path)]) == 0
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=4"]) == 0
    assert _valid_steps(run) == [2, 4]  # steps 3 and 4 added to the first run's 2
    assert "resumed from" in (run / "train.log").read_text(encoding="utf-8")


@pytest.mark.pins("train --set", "train --device")
def test_train_set_and_device_override_the_config_file(tmp_path, monkeypatch):
    from tandem.config import load_config

    seen = []
    monkeypatch.setattr("tandem.train.trainer.train",
                        lambda cfg, resume=False, overwrite=False: seen.append(cfg) or tmp_path)
    cfg = _config_file(tmp_path)
    file = load_config(cfg)
    assert (file.model.hidden_size, file.train.lr, file.train.device) == (16, 0.005, "auto")
    assert main(["train", cfg, "--set", "model.hidden_size=24", "--set", "train.lr=0.5",
                 "--device", "cpu"]) == 0
    [got] = seen
    assert (got.model.hidden_size, got.train.lr, got.train.device) == (24, 0.5, "cpu")


@pytest.mark.pins("train --nproc")
def test_train_nproc_hands_the_command_without_nproc_to_torchrun(tmp_path, monkeypatch):
    from tandem.train import distributed

    launched = []
    for var in distributed.LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(distributed, "run_torchrun",
                        lambda n, argv: launched.append((n, argv)) or 0)
    monkeypatch.setattr("tandem.train.trainer.train",
                        lambda *a, **k: pytest.fail("trained in this process, not by torchrun"))
    cfg = _config_file(tmp_path)
    assert main(["train", cfg, "--nproc", "3", "--set", "train.lr=0.1"]) == 0
    assert launched == [(3, ["train", cfg, "--set", "train.lr=0.1"])]  # what each rank runs


# --- predict -------------------------------------------------------------------------------


def _classify_input(folder: Path, n: int) -> tuple[str, list[str]]:
    """A TSV of n classifier texts (text<TAB>label) and the texts."""
    lines = classify_lines(random.Random(5), n)
    return write(folder / "in.tsv", lines), [x.split("\t")[0] for x in lines]


@pytest.mark.pins("predict --model", "predict --input", "predict --output", "predict --json",
                  "predict --topk")
def test_predict_json_into_an_output_file_holds_the_apis_top_labels(structure_models,
                                                                     tmp_path, capsys):
    model = str(structure_models["classify"])
    path, texts = _classify_input(tmp_path, 6)
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model", model, "--input", path, "--output", str(out), "--json",
                 "--topk", "2"]) == 0
    assert capsys.readouterr().out == ""  # everything went to --output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    api = tandem.load(model).predict(texts, 2)
    assert [r["text"] for r in rows] == texts
    for row, top in zip(rows, api, strict=True):
        assert [x["label"] for x in row["labels"]] == [lab for lab, _ in top]
        assert [x["prob"] for x in row["labels"]] == pytest.approx([p for _, p in top],
                                                                   abs=1e-6)


@pytest.mark.pins("predict --chunk")
def test_predict_reads_chunk_lines_per_batch(structure_models, tmp_path, capsys, monkeypatch):
    from tandem.structures.classify import ClassifierPredictor

    sizes = []
    real = ClassifierPredictor.predict
    monkeypatch.setattr(ClassifierPredictor, "predict", lambda self, texts, topk=1: (
        sizes.append(len(texts)) or real(self, texts, topk)))
    path, texts = _classify_input(tmp_path, 5)
    assert main(["predict", "--model", str(structure_models["classify"]), "--input", path,
                 "--chunk", "2"]) == 0
    assert sizes == [2, 2, 1]
    assert len(capsys.readouterr().out.splitlines()) == len(texts)


@pytest.mark.pins("predict --tags-only", "predict --json")
def test_predict_tags_only_and_json_are_the_apis_tags(structure_models, tmp_path, capsys):
    model = str(structure_models["tag"])
    sentences = ["ab cdb ea", "fb a dd"]
    path = write(tmp_path / "in.txt", sentences)
    api = tandem.load(model).tag(sentences)
    assert main(["predict", "--model", model, "--input", path, "--tags-only"]) == 0
    assert capsys.readouterr().out.splitlines() == [" ".join(t for _, t in pairs)
                                                    for pairs in api]
    assert main(["predict", "--model", model, "--input", path, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"text": s, "words": [w for w, _ in pairs], "tags": [t for _, t in pairs]}
                    for s, pairs in zip(sentences, api, strict=True)]


# --- generate ------------------------------------------------------------------------------


def _generate(capsys, *args: str) -> str:
    """What `tandem generate ARGS` prints."""
    capsys.readouterr()
    assert main(["generate", *args]) == 0
    return capsys.readouterr().out


def _lm_printout(prompts: list[str], texts: list[str], n: int = 1) -> str:
    """What `tandem generate` prints for a language model's `texts` (n per prompt): each
    prompt followed by its continuation, outputs apart by a line of dashes."""
    starts = [p for p in prompts for _ in range(n)]
    return "".join(("\n" + "-" * 40 + "\n" if i else "") + p + t + "\n"
                   for i, (p, t) in enumerate(zip(starts, texts, strict=True)))


@pytest.mark.pins("generate --model", "generate --prompt", "generate --n", "generate --seed")
def test_generate_continues_every_prompt_n_times_as_the_api_does(structure_models, capsys):
    lm = str(structure_models["lm"])
    api = tandem.load(lm)
    prompts = ["a dog", "the mat"]
    want = api.generate(prompts, 3, 12, 7)
    assert want != api.generate(prompts, 3, 12, 8)  # the seed decides the samples
    out = _generate(capsys, "--model", lm, "--prompt", "a dog", "--prompt", "the mat",
                    "--n", "3", "--max-len", "12", "--seed", "7")
    assert out == _lm_printout(prompts, want, 3)


@pytest.mark.pins("generate --greedy", "generate --max-len")
def test_generate_greedy_writes_the_most_likely_tokens_up_to_max_len(structure_models,
                                                                    capsys):
    lm = str(structure_models["lm"])
    api = tandem.load(lm)
    want = api.generate(["the"], 1, 4, sample=False)
    # what the command would print if it ignored the flags: the default limit writes more,
    # a sample at temperature 3 writes something else
    assert len(api.fields.encode_text(want[0])) <= 4
    assert api.generate(["the"], 1, None, sample=False) != want
    assert api.generate(["the"], 1, 4, 3, temperature=3.0) != want
    out = _generate(capsys, "--model", lm, "--prompt", "the", "--greedy", "--max-len", "4",
                    "--seed", "3", "--temperature", "3")
    assert out == _lm_printout(["the"], want)


@pytest.mark.pins("generate --temperature", "generate --top-k")
def test_generate_samples_at_the_temperature_and_top_k_asked(structure_models, capsys):
    lm = str(structure_models["lm"])
    api = tandem.load(lm)
    args = ["--model", lm, "--prompt", "the", "--n", "4", "--max-len", "10", "--seed", "3",
            "--temperature", "3"]
    hot = api.generate(["the"], 4, 10, 3, temperature=3.0)
    assert hot != api.generate(["the"], 4, 10, 3)  # the temperature changes the samples
    assert _generate(capsys, *args) == _lm_printout(["the"], hot, 4)
    # top-k 1 leaves only the most likely token to draw: greedy, however hot
    greedy = api.generate(["the"], 4, 10, sample=False)
    assert greedy != hot
    assert _generate(capsys, *args, "--top-k", "1") == _lm_printout(["the"], greedy, 4)


@pytest.mark.pins("generate --label", "generate --beam")
def test_generate_beam_searches_from_the_labels_asked(structure_models, capsys):
    model = str(structure_models["generate"])
    api = tandem.load(model)
    [want] = api.generate(["B"], beam=3)
    assert api.generate(["B"], seed=3, temperature=3.0) != [want]  # a hot sample differs
    out = _generate(capsys, "--model", model, "--label", "B", "--beam", "3", "--seed", "3",
                    "--temperature", "3")
    assert out.splitlines() == [f"B\t{want}"]  # B alone, not every label


@pytest.fixture(scope="module")
def feature_generator(tmp_path_factory) -> Path:
    """A generator conditioned on feature vectors of 2 numbers, trained 3 steps (its outputs
    need not be good: the test compares them with the API's)."""
    root = tmp_path_factory.mktemp("features")
    raw = config_dict("generate", root / "run", max_steps=3)
    raw["data"] = feature_data(root / "data", 40, 10)
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["train", str(cfg)]) == 0
    return root / "run" / "best.pt"


@pytest.mark.pins("generate --features")
def test_generate_writes_one_output_per_feature_row(feature_generator, tmp_path, capsys):
    rows = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    np.save(tmp_path / "f.npy", rows)
    want = tandem.load(feature_generator).generate(None, rows, 1, 6, sample=False)
    out = _generate(capsys, "--model", str(feature_generator), "--features",
                    str(tmp_path / "f.npy"), "--greedy", "--max-len", "6")
    assert out.splitlines() == [f"row {i}\t{t}" for i, t in enumerate(want)]


# --- --device: each command hands it to the device check --------------------------------


@pytest.mark.pins("predict --device", "generate --device", "plot-attention --device",
                  "g2p --device", "bench --device")
@pytest.mark.parametrize("command", ["predict", "generate", "plot-attention", "g2p", "bench"])
def test_device_flag_reaches_the_device_check(command, structure_models,
                                              attention_checkpoint, tmp_path, capsys,
                                              monkeypatch):
    """A device no machine has ('nope') is refused naming it: proof that the flag is read
    (the default, cpu or auto, runs)."""
    from tandem import bench
    from tandem.config import ModelConfig

    # were the flag ignored, bench would time a tiny model, not the real sizes
    monkeypatch.setitem(bench.SIZES, "small", ModelConfig(cell="gru", emb_size=8,
                                                          hidden_size=8, dropout=0.0))
    model = {"predict": structure_models["classify"], "generate": structure_models["lm"],
             "plot-attention": attention_checkpoint}.get(command)
    args = {"predict": ["--input", _classify_input(tmp_path, 2)[0]],
            "plot-attention": ["--input", "abc", "--out", str(tmp_path / "a.png")],
            "g2p": ["zorblax", "--model", str(attention_checkpoint)],
            "bench": ["--out", str(tmp_path), "--sizes", "small", "--variants", "init",
                      "--quick", "--steps", "1", "--sentences", "1"]}.get(command, [])
    if model is not None:
        args += ["--model", str(model)]
    assert main([command, *args, "--device", "nope"]) == 2
    assert "'nope'" in capsys.readouterr().err


# --- average, data, plots ------------------------------------------------------------------


@pytest.mark.pins("average <checkpoints>", "average --out")
def test_average_writes_the_mean_of_the_checkpoints_to_out(attention_checkpoint, tmp_path,
                                                          capsys):
    first = checkpoint.load(attention_checkpoint)
    tripled = tmp_path / "tripled.pt"  # the same run's weights times 3: the mean is twice them
    checkpoint.save({**first, "model": {k: v * 3 if v.is_floating_point() else v
                                        for k, v in first["model"].items()}}, tripled)
    out = tmp_path / "avg.pt"
    assert main(["average", str(attention_checkpoint), str(tripled), "--out", str(out)]) == 0
    avg = checkpoint.load(out)["model"]
    assert avg.keys() == first["model"].keys()
    for k, v in first["model"].items():
        if v.is_floating_point():
            assert torch.allclose(avg[k], 2 * v, rtol=1e-5, atol=1e-6), k
        else:
            assert torch.equal(avg[k], v), k


@pytest.mark.pins("data <task>", "data --out", "data --sizes", "data --seed", "data --min-len",
                  "data --max-len")
def test_data_writes_the_splits_of_the_task_asked(tmp_path):
    from tandem.data.tasks import make_splits

    out = tmp_path / "d"
    assert main(["data", "sort", "--out", str(out), "--sizes", "6", "3", "2", "--seed", "4",
                 "--min-len", "3", "--max-len", "4"]) == 0
    got = {s: [tuple(line.split("\t")) for line in
               (out / f"{s}.tsv").read_text(encoding="utf-8").splitlines()]
           for s in ("train", "dev", "test")}
    assert {s: len(pairs) for s, pairs in got.items()} == {"train": 6, "dev": 3, "test": 2}
    for pairs in got.values():
        for src, tgt in pairs:  # the sort task's rule, at the lengths asked
            assert 3 <= len(src) <= 4 and tgt == "".join(sorted(src)), (src, tgt)
    want = make_splits("sort", (6, 3, 2), seed=4, min_len=3, max_len=4)
    assert got == want
    assert make_splits("sort", (6, 3, 2), seed=1, min_len=3, max_len=4) != want  # seed decides


@pytest.mark.pins("plot-attention --model", "plot-attention --input", "plot-attention --beam",
                  "plot-attention --out")
def test_plot_attention_draws_the_apis_decode_of_the_input(attention_checkpoint, tmp_path,
                                                          capsys, monkeypatch):
    from tandem import plots
    from tandem.structures.translator import Translator

    beams, drawn = [], []
    real_decode, real_plot = Translator.translate_full, plots.plot_attention
    monkeypatch.setattr(Translator, "translate_full", lambda self, srcs, **kw: (
        beams.append(kw.get("beam")) or real_decode(self, srcs, **kw)))
    monkeypatch.setattr(plots, "plot_attention", lambda src, tgt, att, path: (
        drawn.append((src, tgt, len(att))) or real_plot(src, tgt, att, path)))
    out = tmp_path / "a.png"
    assert main(["plot-attention", "--model", str(attention_checkpoint), "--input", "hello",
                 "--beam", "3", "--out", str(out)]) == 0
    assert beams == [3]
    r = tandem.load(attention_checkpoint).translate_full(["hello"], attention=True, beam=3)[0][0]
    assert drawn == [(list("hello"), r.tokens, len(r.tokens))]  # a row per output token
    assert capsys.readouterr().out == f"{r.text}\nwrote {out}\n"
    assert out.read_bytes()[:8] == PNG


@pytest.mark.pins("plot-run <run>", "plot-run --out")
def test_plot_run_draws_the_curves_of_the_run_given(attention_checkpoint, tmp_path, capsys):
    """Two runs whose losses differ draw different images; one run drawn twice, the same."""
    import csv

    with open(attention_checkpoint.parent / "scalars.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    runs = {}
    for name, scale in (("a", 1.0), ("b", 0.5)):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        with open(runs[name] / "scalars.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({**r, "value": str(float(r["value"]) * scale)} for r in rows)
    images = []
    for name in ("a", "b", "a"):
        out = tmp_path / f"{name}{len(images)}.png"
        assert main(["plot-run", str(runs[name]), "--out", str(out)]) == 0
        assert capsys.readouterr().out == f"wrote {out}\n"
        images.append(out.read_bytes())
    assert all(img[:8] == PNG for img in images)
    assert images[0] == images[2] and images[0] != images[1]


# --- g2p -----------------------------------------------------------------------------------


@pytest.mark.pins("g2p --model", "g2p --no-dictionary")
def test_g2p_sends_every_word_to_the_model_given(attention_checkpoint, capsys):
    from tandem.pronounce import G2P

    words = ["abc", "bead"]  # both in the CMU dictionary
    assert main(["g2p", *words, "--model", str(attention_checkpoint), "--no-dictionary",
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = G2P(attention_checkpoint, dictionary=False).pronounce(words)
    assert rows == [{"word": w, "pronunciations": [{"phonemes": p.phonemes, "source": "model"}
                                                   for p in prons]}
                    for w, prons in zip(words, mine, strict=True)]

    def firsts(prons):
        return [p[0].phonemes for p in prons]

    # what the command would print if it ignored a flag: the dictionary's or the shipped
    # model's pronunciations
    assert firsts(mine) != firsts(G2P(attention_checkpoint).pronounce(words))
    assert firsts(mine) != firsts(G2P(dictionary=False).pronounce(words))
