"""`tandem export` and the lean runtime: every structure and model variant exported, loaded by
`tandem.runtime` and giving the PyTorch path's outputs (tokens identical, log-probabilities
within 1e-4); a damaged, mismatched or unknown export refused by name; an export moved to
another folder still loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tandem
import tandem.runtime
from tandem import checkpoint
from tandem.config import from_dict
from tandem.errors import CheckpointError, ConfigError
from tandem.export import export
from tandem.runtime.manifest import sha256
from tandem.train.trainer import Trainer

# each test trains a small model or starts a process: the slow tier
pytestmark = pytest.mark.slow

TRAIN = {"progress": False, "tensorboard": False, "device": "cpu", "threads": 1,
         "max_steps": 1}


def checkpoint_of(cfg: dict, path: Path, steps: int = 0) -> Path:
    """A checkpoint of a model built from `cfg` (trained `steps` steps). A seq2seq model's
    output layer is scaled up: an untrained model's flat distributions make near ties that
    float32 rounding may break either way, where trained models are sharp."""
    trainer = Trainer.from_config(from_dict(cfg))
    batches = trainer.batches()
    for _ in range(steps):
        trainer.train_step(next(batches))
    state = trainer.checkpoint_dict(with_optimizer=False)
    if "decoder.generator.weight" in state["model"]:
        state["model"]["decoder.generator.weight"] = state["model"]["decoder.generator.weight"] * 6
    checkpoint.save(state, path)
    return path


def seq2seq_cfg(tmp: Path, **model) -> dict:
    return {"run_dir": str(tmp / "run"),
            "data": {"task": "reverse", "task_sizes": [200, 20, 20], "task_max_len": 8},
            "model": {"structure": "seq2seq", "emb_size": 8, "hidden_size": 12,
                      "dropout": 0.0, **model},
            "train": TRAIN}


VARIANTS = [
    {"cell": "gru"},
    {"cell": "lstm", "attention": "general", "input_feeding": True},
    {"cell": "lstm", "attention": "dot", "bidirectional": False, "enc_layers": 2,
     "dec_layers": 2},
    {"cell": "rnn", "attention": "additive", "bridge": "pooled"},
    {"cell": "gru", "conditioning": "every_step", "bridge": "max"},
    {"cell": "lstm", "conditioning": "init", "bridge": "last", "bidirectional": False},
    {"cell": "gru", "bridge": "zero", "tie_embeddings": True, "input_feeding": True},
    {"cell": "lstm", "conditioning": "every_step", "enc_layers": 2, "dec_layers": 1,
     "enc_hidden_size": 16},
]
SOURCES = ["abc", "hello", "x", "tandem rnn", "zyxwvu"]


def same(runtime_results, torch_results) -> None:
    for rt, pt in zip(runtime_results, torch_results, strict=True):
        assert [h.text for h in rt] == [h.text for h in pt]
        for a, b in zip(rt, pt, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)
            assert a.norm_score == pytest.approx(b.norm_score, abs=1e-4)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_every_seq2seq_variant_decodes_alike_in_the_runtime(tmp_path, variant):
    ckpt = checkpoint_of(seq2seq_cfg(tmp_path, **variant), tmp_path / "m.pt", steps=3)
    folder = export(ckpt, tmp_path / "export")
    rt = tandem.runtime.load(folder)
    pt = tandem.load(ckpt, device="cpu")
    for opts in ({"beam": 1}, {"beam": 4, "nbest": 2, "length_penalty": 0.8},
                 {"beam": 3, "no_repeat_ngram_size": 2, "allow_unk": False}):
        same(rt.translate_full(SOURCES, **opts), pt.translate_full(SOURCES, **opts))
    if pt.model.decoder.attention is not None:
        a = rt.translate_full(SOURCES[:2], beam=2, attention=True)
        b = pt.translate_full(SOURCES[:2], beam=2, attention=True)
        for x, y in zip(a, b, strict=True):
            assert np.allclose(x[0].attention, y[0].attention, atol=1e-5)


def test_sampling_with_a_seed_repeats_in_the_runtime(tmp_path):
    ckpt = checkpoint_of(seq2seq_cfg(tmp_path), tmp_path / "m.pt")
    rt = tandem.runtime.load(export(ckpt, tmp_path / "export"))
    one = rt.translate(SOURCES, sample=True, temperature=2.0, top_k=5, seed=3)
    assert rt.translate(SOURCES, sample=True, temperature=2.0, top_k=5, seed=3) == one


def test_batches_searched_side_by_side_answer_as_one_at_a_time(tmp_path):
    ckpt = checkpoint_of(seq2seq_cfg(tmp_path, attention="general"), tmp_path / "m.pt",
                         steps=3)
    folder = export(ckpt, tmp_path / "export")
    one, three = tandem.runtime.load(folder, threads=1), tandem.runtime.load(folder, threads=3)
    sources = SOURCES * 3 + ["ab", "tandem", "q"]
    for opts in ({"beam": 1}, {"beam": 3, "nbest": 2}):
        for batch_size in (2, 100):  # many batches; one, split across the threads
            a = one.translate_full(sources, batch_size=batch_size, **opts)
            b = three.translate_full(sources, batch_size=batch_size, **opts)
            assert [[(h.text, h.score) for h in r] for r in a] == \
                [[(h.text, h.score) for h in r] for r in b]
    sampled = {"sample": True, "temperature": 2.0, "batch_size": 2, "seed": 5}
    assert one.translate(sources, **sampled) == three.translate(sources, **sampled)


def test_a_moved_export_loads_and_a_damaged_one_is_refused_by_name(tmp_path):
    ckpt = checkpoint_of(seq2seq_cfg(tmp_path), tmp_path / "m.pt")
    folder = export(ckpt, tmp_path / "a" / "export")
    moved = tmp_path / "b" / "elsewhere"
    shutil.copytree(folder, moved)
    shutil.rmtree(tmp_path / "a")
    assert tandem.runtime.load(moved).translate(["abc"]) == \
        tandem.load(ckpt, device="cpu").translate(["abc"])
    # a flipped byte in a graph
    step = moved / "step.onnx"
    data = bytearray(step.read_bytes())
    data[len(data) // 2] ^= 0xFF
    step.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"^{step}: its sha256 differs"):
        tandem.runtime.load(moved)
    step.unlink()
    with pytest.raises(CheckpointError, match=rf"^{step}: missing from the export"):
        tandem.runtime.load(moved)
    manifest = moved / "manifest.json"
    body = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**body, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99; this tandem reads versions "
                       "up to 1"):
        tandem.runtime.load(moved)
    manifest.write_text("{not json")
    with pytest.raises(CheckpointError, match=rf"^{manifest}: not valid JSON"):
        tandem.runtime.load(moved)
    with pytest.raises(CheckpointError, match="not a tandem export"):
        tandem.runtime.load(tmp_path)


def test_an_export_never_overwrites_without_being_asked(tmp_path):
    ckpt = checkpoint_of(seq2seq_cfg(tmp_path), tmp_path / "m.pt")
    folder = export(ckpt, tmp_path / "export")
    before = (folder / "manifest.json").read_text()
    with pytest.raises(ConfigError, match="already exists; give another --out, or --overwrite"):
        export(ckpt, folder)
    assert (folder / "manifest.json").read_text() == before
    export(ckpt, folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["encoder.onnx", "manifest.json",
                                                         "step.onnx"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]


def classify_cfg(tmp: Path, **model) -> dict:
    lines = [f"{'good great fine' if i % 2 else 'bad awful poor'} film {i}\t"
             f"{'pos' if i % 2 else 'neg'}" for i in range(60)]
    (tmp / "c.tsv").write_text("\n".join(lines) + "\n")
    return {"run_dir": str(tmp / "run"), "data": {"train": str(tmp / "c.tsv"),
                                                   "src_tokenizer": "word"},
            "model": {"structure": "classify", "emb_size": 8, "hidden_size": 12,
                      "dropout": 0.0, **model}, "train": TRAIN}


@pytest.mark.parametrize("model", [{"cell": "lstm", "bridge": "max"},
                                   {"cell": "gru", "bridge": "last", "bidirectional": False}])
def test_a_classifier_predicts_alike_in_the_runtime(tmp_path, model):
    ckpt = checkpoint_of(classify_cfg(tmp_path, **model), tmp_path / "m.pt", steps=2)
    rt = tandem.runtime.load(export(ckpt, tmp_path / "export"))
    pt = tandem.load(ckpt, device="cpu")
    texts = ["good film", "bad awful film 3", "poor", "great great fine film"]
    assert np.allclose(rt.probabilities(texts), pt.probabilities(texts).numpy(), atol=1e-5)
    assert [[lab for lab, _ in top] for top in rt.predict(texts, topk=2)] == \
        [[lab for lab, _ in top] for top in pt.predict(texts, topk=2)]


def tag_cfg(tmp: Path, **model) -> dict:
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    tags = {"the": "DET", "a": "DET", "on": "ADP", "sat": "VERB", "ran": "VERB"}
    rng = np.random.default_rng(0)
    sents = []
    for _ in range(40):
        ws = [words[j] for j in rng.integers(0, len(words), rng.integers(2, 7))]
        sents.append("\n".join(f"{w}\t{tags.get(w, 'NOUN')}" for w in ws))
    (tmp / "t.tsv").write_text("\n\n".join(sents) + "\n")
    return {"run_dir": str(tmp / "run"), "data": {"train": str(tmp / "t.tsv")},
            "model": {"structure": "tag", "emb_size": 8, "hidden_size": 12, "dropout": 0.0,
                      **model}, "train": TRAIN}


@pytest.mark.parametrize("model", [{"cell": "lstm"}, {"cell": "gru", "char_emb_size": 0}])
def test_a_tagger_tags_alike_in_the_runtime(tmp_path, model):
    ckpt = checkpoint_of(tag_cfg(tmp_path, **model), tmp_path / "m.pt", steps=2)
    rt = tandem.runtime.load(export(ckpt, tmp_path / "export"))
    pt = tandem.load(ckpt, device="cpu")
    sents = ["the cat sat on a mat", "dog", "a zebra ran", "Cat Sat"]
    assert rt.tag(sents) == pt.tag(sents)


def test_the_runtime_never_imports_torch(tmp_path):
    import subprocess
    import sys

    ckpt = checkpoint_of(seq2seq_cfg(tmp_path), tmp_path / "m.pt")
    folder = export(ckpt, tmp_path / "export")
    code = ("import sys, tandem.runtime\n"
            f"m = tandem.runtime.load({str(folder)!r})\n"
            "print(m.translate(['abc'], beam=3)[0])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == tandem.load(ckpt, device="cpu").translate(["abc"], beam=3)[0]


@pytest.mark.pins("export --model", "export --out", "export --quantize", "export --overwrite")
def test_the_export_command_writes_a_folder_the_commands_run(tmp_path, capsys):
    import onnx

    from tandem.cli import main

    ckpt = checkpoint_of(seq2seq_cfg(tmp_path, cell="lstm"), tmp_path / "m.pt", steps=3)
    out = tmp_path / "exports" / "rev"
    assert main(["export", "--model", str(ckpt), "--out", str(out)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [x.split("\t")[0] for x in listed] == [str(out / "encoder.onnx"),
                                                  str(out / "step.onnx")]
    (tmp_path / "in.txt").write_text("abc\nhello\n")
    assert main(["translate", "--model", str(out), "--input", str(tmp_path / "in.txt"),
                 "--beam", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == tandem.load(ckpt, device="cpu").translate(
        ["abc", "hello"], beam=3)
    assert main(["translate", "--model", str(out), "--quantize", "int8"]) == 2
    assert "is an export, which runs as exported" in capsys.readouterr().err
    # int8: the MatMul and LSTM weights stored as int8, the same outputs on this easy model
    assert main(["export", "--model", str(ckpt), "--out", str(out), "--quantize", "int8"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--model", str(ckpt), "--out", str(out), "--quantize", "int8",
                 "--overwrite"]) == 0
    body = json.loads((out / "manifest.json").read_text())
    assert body["precision"] == "int8"
    ops = {n.op_type for n in onnx.load(str(out / "step.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops or "DynamicQuantizeLSTM" in ops
    assert not {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeLSTM"} & {
        n.op_type for n in onnx.load(str(export(ckpt, tmp_path / "plain") / "step.onnx"))
        .graph.node}
    assert len(tandem.runtime.load(out).translate(["abc", "hello"])) == 2


def test_an_export_serves_as_its_checkpoint_does(tmp_path):
    from fastapi.testclient import TestClient

    from tandem.serve import ServeOptions, create_app

    ckpt = checkpoint_of(seq2seq_cfg(tmp_path), tmp_path / "m.pt", steps=3)
    rt = tandem.runtime.load(export(ckpt, tmp_path / "export"))
    pt = tandem.load(ckpt, device="cpu")
    body = {"inputs": ["abc", "hello"], "beam": 3, "nbest": 2}
    answers = []
    for model in (rt, pt):
        with TestClient(create_app(model, ServeOptions())) as c:
            r = c.post("/v1/translate", json=body)
            assert r.status_code == 200, r.text
            answers.append(r.json())
            assert c.get("/v1/model").json()["structure"] == "seq2seq"
    assert answers[0]["outputs"] == answers[1]["outputs"]
    assert [[h["text"] for h in r["hypotheses"]] for r in answers[0]["results"]] == \
        [[h["text"] for h in r["hypotheses"]] for r in answers[1]["results"]]
    (tmp_path / "c").mkdir()
    cls = checkpoint_of(classify_cfg(tmp_path / "c"), tmp_path / "c.pt", steps=2)
    rtc = tandem.runtime.load(export(cls, tmp_path / "cexport"))
    with TestClient(create_app(rtc, ServeOptions())) as c:
        r = c.post("/v1/predict", json={"inputs": ["good film"], "topk": 2})
        assert r.status_code == 200, r.text
        got = [x["label"] for x in r.json()["results"][0]["labels"]]
    assert got == [lab for lab, _ in tandem.load(cls, device="cpu").predict(["good film"], 2)[0]]


def test_language_models_and_generators_write_alike_in_the_runtime(structure_models,
                                                                   tmp_path):
    lm_pt, gen_pt = structure_models["lm"], structure_models["generate"]
    lm = tandem.runtime.load(export(lm_pt, tmp_path / "lm"))
    assert sorted(lm.graphs) == ["step"]  # the weights once: prompts are read by steps
    ref = tandem.load(lm_pt, device="cpu")
    prompts = ["the cat", "", "a dog sat on"]
    for opts in ({"sample": False}, {"beam": 3, "sample": False}):
        assert lm.generate(prompts, max_len=20, **opts) == \
            ref.generate(prompts, max_len=20, **opts)
    drawn = lm.generate(prompts, n=2, max_len=15, seed=4, temperature=1.5)
    assert lm.generate(prompts, n=2, max_len=15, seed=4, temperature=1.5) == drawn
    # an export made before 2026-12-08 also lists a `prefix` graph: it loads, and the step
    # graph still reads the prompts
    old = tmp_path / "lm_old"
    shutil.copytree(tmp_path / "lm", old)
    shutil.copy(old / "step.onnx", old / "prefix.onnx")
    body = json.loads((old / "manifest.json").read_text())
    body["graphs"]["prefix"] = {**body["graphs"]["step"], "file": "prefix.onnx"}
    body["files"]["prefix.onnx"] = sha256(old / "prefix.onnx")
    (old / "manifest.json").write_text(json.dumps(body))
    assert tandem.runtime.load(old).generate(prompts, max_len=20, sample=False) == \
        ref.generate(prompts, max_len=20, sample=False)
    gen = tandem.runtime.load(export(gen_pt, tmp_path / "gen"))
    ref = tandem.load(gen_pt, device="cpu")
    assert gen.labels == ref.labels
    for opts in ({"sample": False}, {"beam": 2, "sample": False}):
        assert gen.generate(ref.labels, max_len=12, **opts) == \
            ref.generate(ref.labels, max_len=12, **opts)
    with pytest.raises(tandem.DataError, match="is not one of the"):
        gen.generate(["no such label"])


def test_a_generator_of_feature_vectors_writes_alike_in_the_runtime(tmp_path):
    from structdata import config_dict, feature_data

    raw = config_dict("generate", tmp_path / "run")
    raw["data"] = feature_data(tmp_path / "data", 60, 10)
    raw["train"] = {**raw["train"], **TRAIN}
    ckpt = checkpoint_of(raw, tmp_path / "g.pt", steps=3)
    rt = tandem.runtime.load(export(ckpt, tmp_path / "export"))
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]], np.float32)
    assert rt.generate(features=rows, max_len=10, sample=False) == \
        tandem.load(ckpt, device="cpu").generate(features=rows, max_len=10, sample=False)
