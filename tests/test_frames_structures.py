"""Frames in for every structure whose encoder reads its input: a tagger labels each frame of a
series, a seq2seq model writes text from a series, a classifier labels a series. Padding never
changes a prediction, the normalisation comes from training frames only and survives the
checkpoint, and every bad input is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tandem
from tandem.config import from_dict
from tandem.data.frames import read_series, segments
from tandem.errors import DataError
from tandem.structures import get

TRAIN = {"progress": False, "tensorboard": False, "device": "cpu", "threads": 1}


def tag_npz(path: Path, n: int, seed: int) -> Path:
    """Three channels; channel 1 is high where the frame's tag is 'up', low where 'down';
    channel 3 has a large offset (so normalisation matters)."""
    rng = np.random.default_rng(seed)
    T = 16
    x = rng.normal(0, 0.3, (n, T, 3)).astype(np.float32)
    x[:, :, 2] += 50.0
    tags = rng.integers(0, 2, (n, T))
    x[:, :, 0] += np.where(tags == 1, 1.0, -1.0)
    y = np.where(tags == 1, "up", "down")
    np.savez(path, x=x, y=y, lengths=rng.integers(4, T + 1, n))
    return path


def s2s_npz(path: Path, n: int, seed: int) -> Path:
    """Each letter a, b or c is 3 frames hot on its channel; the target is the letters."""
    rng = np.random.default_rng(seed)
    T = 15
    x = np.zeros((n, T, 3), np.float32)
    y, lengths = [], []
    for i in range(n):
        letters = rng.integers(0, 3, int(rng.integers(1, 6)))
        for j, c in enumerate(letters):
            x[i, 3 * j: 3 * j + 3, c] = 1.0
        x[i, : 3 * len(letters)] += rng.normal(0, 0.1, (3 * len(letters), 3))
        y.append("".join("abc"[c] for c in letters))
        lengths.append(3 * len(letters))
    np.savez(path, x=x, y=np.array(y), lengths=np.array(lengths))
    return path


def tag_config(tmp: Path, steps: int = 40, **data) -> tandem.Config:
    return from_dict({
        "run_dir": str(tmp / "tag"),
        "data": {"src_kind": "frames", "train": str(tag_npz(tmp / "tag_train.npz", 120, 1)),
                 "test": str(tag_npz(tmp / "tag_test.npz", 30, 2)), **data},
        "model": {"structure": "tag", "cell": "gru", "emb_size": 8, "hidden_size": 16,
                  "dropout": 0.0},
        "train": {"max_steps": steps, "valid_every": steps, "batch_tokens": 400, "lr": 0.02,
                  **TRAIN}})


def s2s_config(tmp: Path, steps: int = 40, **data) -> tandem.Config:
    return from_dict({
        "run_dir": str(tmp / "s2s"),
        "data": {"src_kind": "frames", "tgt_tokenizer": "char",
                 "train": str(s2s_npz(tmp / "s2s_train.npz", 200, 1)),
                 "test": str(s2s_npz(tmp / "s2s_test.npz", 20, 2)), **data},
        "model": {"structure": "seq2seq", "cell": "gru", "emb_size": 8, "hidden_size": 16,
                  "dropout": 0.0},
        "train": {"max_steps": steps, "valid_every": steps, "batch_tokens": 400, "lr": 0.01,
                  "valid_metric": "loss", **TRAIN}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tagger and a seq2seq model over frames, trained a few steps each."""
    from tandem.train.trainer import train

    tmp = tmp_path_factory.mktemp("frames")
    runs = {"tag": train(tag_config(tmp)), "s2s": train(s2s_config(tmp))}
    return tmp, {k: tandem.load(v / "best.pt", device="cpu") for k, v in runs.items()}


@pytest.mark.pins("data.src_kind")
@pytest.mark.slow
def test_a_tagger_over_frames_tags_every_frame(trained, capsys):
    tmp, models = trained
    tagger = models["tag"]
    series = read_series(tmp / "tag_test.npz", per_frame=True)
    tags = tagger.tag_frames([x for x, _, _ in series])
    assert [len(t) for t in tags] == [len(x) for x, _, _ in series]
    right = sum(a == b for t, (_, gold, _) in zip(tags, series, strict=True)
                for a, b in zip(t, gold, strict=True))
    res = tagger.evaluate()
    assert res["series"] == 30 and res["frames"] == sum(len(x) for x, _, _ in series)
    assert res["token_acc"] == pytest.approx(100.0 * right / res["frames"])
    assert res["token_acc"] > 80.0  # the task is one threshold on channel 1
    with pytest.raises(DataError, match="call tag_frames"):
        tagger.tag(["some words"])
    # the command line: each series' segments, FIRST-END:TAG
    from tandem.cli import main

    model = str(tmp / "tag" / "best.pt")
    capsys.readouterr()
    assert main(["predict", "--model", model, "--input", str(tmp / "tag_test.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == " ".join(f"{a}-{b}:{t}" for a, b, t in segments(tags[0]))
    assert main(["predict", "--model", model, "--input", str(tmp / "tag_test.npz"),
                 "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["tags"] == tags[0] and first["input"].endswith("series 0")


def test_segments_are_runs_of_one_tag():
    assert segments(["a", "a", "b", "a"]) == [(0, 2, "a"), (2, 3, "b"), (3, 4, "a")]
    assert segments([]) == []


@pytest.mark.slow
def test_a_seq2seq_model_over_frames_writes_text(trained, capsys):
    tmp, models = trained
    tr = models["s2s"]
    series = read_series(tmp / "s2s_test.npz")
    outs = tr.translate([x for x, _, _ in series], beam=2)
    assert len(outs) == 20 and all(isinstance(o, str) for o in outs)
    res = tr.evaluate(tmp / "s2s_test.npz", opts=tr.options(beam=2))
    right = sum(o == gold for o, (_, gold, _) in zip(outs, series, strict=True))
    assert res["sentences"] == 20 and res["exact_match"] == pytest.approx(100.0 * right / 20)
    full = tr.translate_full([series[0][0]], attention=True)[0][0]
    assert full.src_tokens == [] and len(full.attention[0]) == len(series[0][0])
    from tandem.cli import main

    capsys.readouterr()
    assert main(["translate", "--model", str(tmp / "s2s" / "best.pt"), "--input",
                 str(tmp / "s2s_test.npz"), "--beam", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == outs
    assert main(["translate", "--model", str(tmp / "s2s" / "best.pt")]) == 2
    assert "give --input FILE" in capsys.readouterr().err


@pytest.mark.slow
def test_a_long_series_is_refused_or_cut(trained):
    _, models = trained
    tr = models["s2s"]
    limit = tr.config.data.max_src_len
    long = np.zeros((limit + 1, 3), np.float32)
    with pytest.raises(DataError, match=rf"input 1 has {limit + 1} frames, more than"):
        tr.translate([long], on_long_input="error")
    assert len(tr.translate([long], on_long_input="truncate")) == 1


@pytest.mark.slow
def test_padding_never_changes_a_prediction(trained):
    """A batch of series of different lengths gives each series what it gets alone."""
    tmp, models = trained
    tagger, tr = models["tag"], models["s2s"]
    tag_series = [x for x, _, _ in read_series(tmp / "tag_test.npz", per_frame=True)][:8]
    assert len({len(x) for x in tag_series}) > 1
    assert tagger.tag_frames(tag_series) == [tagger.tag_frames([x])[0] for x in tag_series]
    src = [x for x, _, _ in read_series(tmp / "s2s_test.npz")][:8]
    together = tr.translate_full(src, beam=3)
    for x, got in zip(src, together, strict=True):
        alone = tr.translate_full([x], beam=3)[0]
        assert [h.text for h in got] == [h.text for h in alone]
        assert got[0].score == pytest.approx(alone[0].score, abs=1e-4)
    # the logits of the real frames, too, not only their argmax
    ex = [(tagger.fields.frames(x), [], [0] * len(x)) for x in tag_series]
    from tandem.structures.tag import collate, forward

    with torch.no_grad():
        batch = forward(tagger.model, collate(ex, list(range(len(ex)))))
        for i, e in enumerate(ex):
            one = forward(tagger.model, collate([e], [0]))[0]
            assert torch.allclose(batch[i, : len(e[0])], one, atol=1e-5)


@pytest.mark.pins("data.frame_norm")
@pytest.mark.slow
def test_normalisation_comes_from_training_frames_and_survives_the_checkpoint(trained):
    tmp, models = trained
    from tandem.data.frames import frame_splits

    cfg = s2s_config(tmp)
    train, dev, _ = frame_splits(cfg.data)  # no data.dev: 10% of train is dev
    assert (len(train), len(dev)) == (180, 20)
    data = get("seq2seq").load(cfg)
    only_train = np.concatenate([x for x, _, _ in train]).astype(np.float64)
    both = np.concatenate([x for x, _, _ in train + dev]).astype(np.float64)
    assert data.fields.frame_mean == pytest.approx(only_train.mean(0).tolist(), abs=1e-5)
    assert data.fields.frame_std == pytest.approx(only_train.std(0).tolist(), abs=1e-5)
    assert data.fields.frame_mean != pytest.approx(both.mean(0).tolist(), abs=1e-5)
    tr = models["s2s"]
    assert tr.fields.frame_mean == data.fields.frame_mean
    assert tr.fields.frame_std == data.fields.frame_std
    tagger = models["tag"]
    assert tagger.fields.frame_mean[2] == pytest.approx(50.0, abs=0.1)
    normed = tagger.fields.frames(np.full((2, 3), 50.0))
    assert abs(float(normed[0, 2])) < 1.0
    plain = get("tag").load(tag_config(tmp, frame_norm=False))
    assert plain.fields.frame_mean == [] and float(plain.train[0][0][0, 2]) > 40.0


@pytest.mark.pins("data.reverse_source")
def test_a_reversed_source_reads_the_frames_last_to_first(tmp_path):
    data = get("seq2seq").load(s2s_config(tmp_path, reverse_source=True, frame_norm=False))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert data.fields.encode_src(x).tolist() == x[::-1].tolist()


@pytest.mark.slow
def test_bad_frame_inputs_are_refused_by_name(tmp_path, trained):
    _, models = trained
    p = tmp_path / "one_label.npz"
    np.savez(p, x=np.zeros((2, 4, 3)), y=np.array(["up", "down"]))
    with pytest.raises(DataError, match=rf"^{p}: y has shape \(2,\); a tagger's y holds a label "
                       "per frame"):
        read_series(p, per_frame=True)
    ts = tmp_path / "a.ts"
    ts.write_text("@dimensions 1\n@classLabel true a\n@data\n1,2:a\n")
    with pytest.raises(DataError, match=rf"^{ts}: a .ts file holds one label per series"):
        read_series(ts, per_frame=True)
    nan = tmp_path / "nan.npz"
    np.savez(nan, x=np.array([[[1.0, np.nan, 0.0]]]), y=np.array([["up"]]))
    with pytest.raises(DataError, match=rf"^{nan}: series 0 \(x\[0\]\) holds NaN"):
        read_series(nan, per_frame=True)
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, x=np.zeros((2, 4, 2)), y=np.full((2, 4), "up"))
    cfg = tag_config(tmp_path, dev=str(narrow))
    with pytest.raises(DataError, match=rf"^{narrow}: series 0: frames of 2 numbers, but the "
                       "training series have 3 channels"):
        get("tag").load(cfg)
    with pytest.raises(DataError, match=r"^input 2: a series of shape \(4, 2\): the model "
                       r"reads frames of 3 numbers"):
        models["s2s"].translate([np.zeros((4, 3)), np.zeros((4, 2))])
    with pytest.raises(DataError, match="NaN or infinity"):
        models["tag"].tag_frames([np.full((2, 3), np.inf)])


@pytest.mark.slow
def test_a_classifier_over_frames_ignores_padding(tmp_path):
    from tandem.train.trainer import Trainer
    from test_frames import config as classify_config

    trainer = Trainer.from_config(classify_config(tmp_path))
    model = get("classify").build(trainer.cfg, trainer.structure.fields)
    model.load_state_dict(trainer.model.state_dict())
    from tandem.structures.classify import ClassifierPredictor

    clf = ClassifierPredictor(model, trainer.structure.fields, trainer.cfg)
    series = [x for x, _, _ in read_series(tmp_path / "test.ts")][:10]
    assert len({len(x) for x in series}) > 1
    together = clf.probabilities(series)
    alone = torch.cat([clf.probabilities([x]) for x in series])
    assert torch.allclose(together, alone, atol=1e-6)


@pytest.mark.slow
def test_models_over_frames_export_and_run_alike(trained, tmp_path):
    import tandem.runtime
    from tandem.export import export

    src, models = trained
    tagger = tandem.runtime.load(export(src / "tag" / "best.pt", tmp_path / "tag"))
    series = [x for x, _, _ in read_series(src / "tag_test.npz", per_frame=True)]
    assert tagger.tag_frames(series) == models["tag"].tag_frames(series)
    tr = tandem.runtime.load(export(src / "s2s" / "best.pt", tmp_path / "s2s"))
    series = [x for x, _, _ in read_series(src / "s2s_test.npz")]
    assert tr.translate(series, beam=3) == models["s2s"].translate(series, beam=3)


@pytest.mark.slow
def test_a_seq2seq_model_over_frames_scores_and_rescores(trained):
    """`score` reads series as `translate` does: the score of the model's own best output is
    its search score (for outputs that ended with eos, which `score` counts; an output cut at
    the length limit has none); reranking by itself keeps the search's best."""
    tmp, models = trained
    tr = models["s2s"]
    series = [x for x, _, _ in read_series(tmp / "s2s_test.npz")][:6]
    best = [r[0] for r in tr.translate_full(series, beam=3)]
    d = tr.config.decode
    ended = [i for i, (x, b) in enumerate(zip(series, best, strict=True))
             if len(b.tokens) < int(d.max_len_a * len(x) + d.max_len_b)]
    assert len(ended) >= 2
    got = tr.score([series[i] for i in ended], [best[i].tokens for i in ended])
    assert got == pytest.approx([best[i].score for i in ended], abs=1e-4)
    tr.rescore_with(tr)
    try:
        assert [r[0].text for r in tr.translate_full(series, beam=3)] == [b.text for b in best]
    finally:
        tr.rescorers = []
