"""Frames in, not tokens: a classifier over sequences of feature vectors (data.src_kind:
frames) read from the UEA/UCR archive's .ts files, normalised per channel, trained, evaluated
and used; the reader names the file and line of every malformed series."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import tandem
from tandem.config import from_dict
from tandem.data.frames import read_ts
from tandem.errors import ConfigError, DataError
from tandem.structures import get

HEADER = "# made up\n@problemName Toy\n@dimensions 2\n@classLabel true up down\n@data\n"


def series_line(rng: random.Random) -> tuple[str, str]:
    """Two channels: channel 1 rises (label up) or falls (down); channel 2 is noise."""
    n = rng.randint(4, 12)
    label = rng.choice(["up", "down"])
    start = rng.uniform(-1, 1)
    step = rng.uniform(0.2, 0.5) * (1 if label == "up" else -1)
    one = [start + step * t + rng.gauss(0, 0.05) for t in range(n)]
    two = [rng.gauss(3, 2) for _ in range(n)]
    return (f"{','.join(f'{v:.4f}' for v in one)}:{','.join(f'{v:.4f}' for v in two)}:{label}",
            label)


def write_ts(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.write_text(HEADER + "\n".join(series_line(rng)[0] for _ in range(n)) + "\n")
    return path


def config(tmp_path: Path, **data) -> tandem.Config:
    return from_dict({
        "run_dir": str(tmp_path / "run"),
        "data": {"src_kind": "frames", "train": str(write_ts(tmp_path / "train.ts", 160, 1)),
                 "test": str(write_ts(tmp_path / "test.ts", 60, 2)), **data},
        "model": {"structure": "classify", "cell": "gru", "emb_size": 8, "hidden_size": 16,
                  "dropout": 0.0, "bridge": "max"},
        "train": {"max_steps": 80, "valid_every": 40, "batch_tokens": 300, "lr": 0.02,
                  "progress": False, "tensorboard": False, "device": "cpu", "threads": 1}})


def test_read_ts_gives_one_array_a_series(tmp_path):
    p = tmp_path / "a.ts"
    p.write_text(HEADER + "1,2,3:4,5,6:up\n0.5:7:down\n")
    (a, la, wa), (b, lb, _) = read_ts(p)
    assert a.dtype == np.float32 and a.tolist() == [[1, 4], [2, 5], [3, 6]] and la == "up"
    assert b.shape == (1, 2) and lb == "down" and wa == f"{p}:6"


@pytest.mark.parametrize("line, says", [
    ("1,2:3:up", "channels of one series must be equally long"),
    ("1,nan:3,4:up", "NaN or infinity"),
    ("1,?:3,4:up", "not a number"),
    ("1,2:3,4:5,6:up", "3 channels, but @dimensions says 2"),
    ("1,2:3,4:sideways", "class label 'sideways' is not one of"),
    ("1,2:3,4:", "the class label after the last ':' is missing"),
])
def test_a_malformed_series_is_named_by_file_and_line(tmp_path, line, says):
    p = tmp_path / "bad.ts"
    p.write_text(HEADER + "1:2:up\n" + line + "\n")
    with pytest.raises(DataError, match=rf"^{p}:7: .*{says}"):
        read_ts(p)


def test_a_file_without_data_is_refused(tmp_path):
    p = tmp_path / "empty.ts"
    p.write_text("@dimensions 2\n")
    with pytest.raises(DataError, match="no @data line"):
        read_ts(p)


def test_frames_are_for_an_encoder_reading_a_file(tmp_path):
    for structure in ("lm", "generate"):
        with pytest.raises(ConfigError, match=r"^data\.src_kind = 'frames' is not allowed: "
                           r"'frames' with model.structure = classify, tag, seq2seq .*regression"):
            from_dict({"data": {"src_kind": "frames", "train": "x.ts"},
                       "model": {"structure": structure}})
    with pytest.raises(ConfigError, match=r"^data\.streaming = True is not allowed"):
        from_dict({"data": {"src_kind": "frames", "train": "x.npz", "streaming": True}})
    with pytest.raises(ConfigError, match=r"^data\.src_kind = 'frames' is not allowed: .*\.ts"):
        from_dict({"data": {"src_kind": "frames", "task": "copy"},
                   "model": {"structure": "classify"}})


@pytest.mark.pins("data.frame_norm", "data.frame_dev_fraction")
def test_channels_are_normalised_on_training_frames_and_dev_is_held_out(tmp_path):
    cfg = config(tmp_path, frame_dev_fraction=0.25)
    data = get("classify").load(cfg)
    assert (len(data.train), len(data.dev), len(data.test)) == (120, 40, 60)
    frames = np.concatenate([x for x, _ in data.train], 0)
    assert np.allclose(frames.mean(0), 0, atol=1e-4) and np.allclose(frames.std(0), 1, atol=1e-3)
    raw = np.concatenate([x for x, _, _ in data.items["train"]], 0)
    assert data.fields.frame_mean == pytest.approx(raw.mean(0).tolist(), abs=1e-4)
    plain = get("classify").load(config(tmp_path, frame_norm=False, frame_dev_fraction=0.0))
    assert plain.fields.frame_mean == [] and len(plain.dev) == 0
    assert np.array_equal(plain.train[0][0], plain.items["train"][0][0])


@pytest.mark.slow
@pytest.mark.pins("data.src_kind")
def test_a_frames_classifier_trains_evaluates_and_predicts(tmp_path, capsys):
    from tandem.train.trainer import train

    run = train(config(tmp_path))
    model = tandem.load(run / "best.pt", device="cpu")
    assert model.fields.num_features == 2
    res = model.evaluate()
    assert res["items"] == 60 and res["accuracy"] > 90.0
    # predict on the raw series (normalised by the model) agrees with evaluate
    series = read_ts(tmp_path / "test.ts")
    top = model.predict([x for x, _, _ in series])
    right = sum(t[0][0] == lab for t, (_, lab, _) in zip(top, series, strict=True))
    assert 100.0 * right / len(series) == pytest.approx(res["accuracy"])
    with pytest.raises(DataError, match="frames of 2 numbers"):
        model.predict([np.zeros((3, 5))])
    # the command line reads a file of series (.ts, .npz or .npy)
    from tandem.cli import main

    capsys.readouterr()
    assert main(["predict", "--model", str(run / "best.pt"), "--input",
                 str(tmp_path / "test.ts")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [x.split("\t")[0] for x in lines] == [t[0][0] for t in top]
    np.save(tmp_path / "two.npy", np.stack([series[0][0][:4], series[1][0][:4]]))
    assert main(["predict", "--model", str(run / "best.pt"), "--input",
                 str(tmp_path / "two.npy"), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == [f"{tmp_path / 'two.npy'}: series {i}" for i in (0, 1)]
    assert main(["predict", "--model", str(run / "best.pt")]) == 2
    assert "give --input FILE" in capsys.readouterr().err
    # the server takes each series as a JSON list of frames, its schema stating their width
    from fastapi.testclient import TestClient

    from tandem.serve import ServeOptions, create_app

    with TestClient(create_app(model, ServeOptions(max_chars=20))) as c:
        body = {"inputs": [series[0][0].tolist(), series[1][0].tolist()], "topk": 1}
        r = c.post("/v1/predict", json=body)
        wide = c.post("/v1/predict", json={"inputs": [[[1.0, 2.0, 3.0]]]})
        long = c.post("/v1/predict", json={"inputs": [[[1.0, 2.0]] * 21]})
    assert r.status_code == 200, r.text
    assert [x["labels"][0]["label"] for x in r.json()["results"]] == [t[0][0] for t in top[:2]]
    assert wide.status_code == 422 and long.status_code == 422


def test_read_npz_takes_padded_series_with_lengths(tmp_path):
    from tandem.data.frames import read_npz, read_series

    p = tmp_path / "s.npz"
    x = np.arange(2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2)
    np.savez(p, x=x, y=np.array(["a", "b"]), lengths=np.array([3, 1]))
    (a, la, _), (b, lb, wb) = read_series(p)
    assert a.tolist() == x[0].tolist() and la == "a" and a.dtype == np.float32
    assert b.tolist() == x[1, :1].tolist() and lb == "b" and wb == f"{p}: series 1"
    np.savez(p, x=np.ones((2, 4)), y=np.array([3, 4]))  # (N, T): one channel, integer labels
    assert [(s.shape, lab) for s, lab, _ in read_npz(p)] == [((4, 1), "3"), ((4, 1), "4")]


@pytest.mark.parametrize("arrays, says", [
    ({"x": np.ones((2, 3, 1))}, "no array y"),
    ({"x": np.ones((2, 3, 1)), "y": np.array([1])}, "one label per series"),
    ({"x": np.ones((2, 3, 1)), "y": np.array([1, 2]), "lengths": np.array([0, 3])},
     r"lengths must be 2 numbers in \[1, 3\]"),
    ({"x": np.array([[[1.0], [np.nan]]]), "y": np.array([1])}, r"series 0 \(x\[0\]\) holds NaN"),
])
def test_a_malformed_npz_is_named(tmp_path, arrays, says):
    from tandem.data.frames import read_npz

    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=rf"^{p}: .*{says}"):
        read_npz(p)


def test_frames_come_from_ts_or_npz_files(tmp_path):
    from tandem.data.frames import read_series

    with pytest.raises(DataError, match=r"x\.csv: series of frames are read from \.ts .* \.npz"):
        read_series(tmp_path / "x.csv")


def test_an_unlabelled_ts_file_is_read_for_prediction(tmp_path):
    p = tmp_path / "u.ts"
    p.write_text("@dimensions 2\n@classLabel false\n@data\n1,2:3,4\n5:6\n")
    assert [(x.tolist(), lab) for x, lab, _ in read_ts(p)] == [([[1, 3], [2, 4]], "-"),
                                                                ([[5, 6]], "-")]
