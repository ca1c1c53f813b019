"""Corpora larger than memory (`data.streaming`, tandem/data/streaming.py): the streamed epoch
is every usable line once, in an order fixed by the seed; memory holds one shuffle buffer
whatever the corpus size; a resume in the middle of the stream is exact; bad input is named."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
import yaml

from tandem import checkpoint
from tandem.config import from_dict
from tandem.data.streaming import PairStream, StreamPosition, streamed_batches
from tandem.errors import ConfigError, DataError
from tandem.structures.seq2seq import StreamedSeq2SeqStructure
from tandem.train.trainer import train

ROOT = Path(__file__).resolve().parent.parent


def corpus(path: Path, n: int, seed: int = 0, lo: int = 3, hi: int = 12) -> Path:
    """`n` lines of `letters<TAB>the letters reversed` (gzip when `path` ends in .gz)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        s = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(lo, hi)))
        lines.append(f"{s}\t{s[::-1]}\n")
    data = "".join(lines).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _raw(tmp: Path, train_file: Path, **train) -> dict:
    return {"name": "s", "run_dir": str(tmp / "run"),
            "data": {"train": str(train_file), "streaming": True, "shuffle_buffer": 200,
                     "vocab_sample_lines": 500},
            "model": {"emb_size": 16, "hidden_size": 32, "attention": "general",
                      "dropout": 0.2},
            "train": {"batch_tokens": 300, "lr": 0.005, "progress": False, "threads": 1,
                      "tensorboard": False, "keep_last": 0, "valid_every": 10**6,
                      "log_every": 10, **train}}


def _encode(pairs):
    return [([ord(c) for c in s], [ord(c) for c in t]) for s, t in pairs]


def _epoch(stream: PairStream, seed: int, buffer: int = 100, start=None):
    return list(streamed_batches(stream, _encode, buffer, 200, seed, start))


def test_a_streamed_epoch_is_every_line_once_in_an_order_fixed_by_the_seed(tmp_path):
    path = corpus(tmp_path / "train.tsv.gz", 1000)
    stream = PairStream(str(path))
    a, b, other = _epoch(stream, 7), _epoch(stream, 7), _epoch(stream, 8)
    assert [x for x, _ in a] == [x for x, _ in b]
    assert [x for x, _ in a] != [x for x, _ in other]
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    seen = sorted("".join(map(chr, s)) for batch, _ in a for s, _ in batch)
    assert seen == sorted(x.split("\t")[0] for x in lines)
    # resuming from a position mid-epoch gives exactly the batches after it
    k = len(a) // 2 + 3
    assert [x for x, _ in _epoch(stream, 7, start=a[k][1])] == [x for x, _ in a[k + 1:]]
    assert a[k][1].pool > 0  # ... from a pool other than the first: a seek, not a re-read


def _peak_bytes(stream: PairStream, buffer: int) -> int:
    tracemalloc.start()
    try:
        for _ in streamed_batches(stream, _encode, buffer, 200, 1):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_is_one_buffer_not_the_corpus(tmp_path):
    buffer = 500
    small = PairStream(str(corpus(tmp_path / "a.tsv", 20 * buffer, lo=40, hi=90)))
    large = PairStream(str(corpus(tmp_path / "b.tsv", 40 * buffer, lo=40, hi=90)))
    peak_small, peak_large = _peak_bytes(small, buffer), _peak_bytes(large, buffer)
    assert peak_large < 1.3 * peak_small  # twice the corpus, the same memory
    tracemalloc.start()
    everything = [x for batch, _ in _epoch(large, 1, 40 * buffer) for x in batch]
    whole = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(everything) == 40 * buffer
    assert peak_large < whole / 10  # what reading it into memory would hold


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_training_rss_stays_flat_on_a_corpus_of_24_buffers(tmp_path):
    data = corpus(tmp_path / "train.tsv", 24 * 250, lo=40, hi=90)
    raw = _raw(tmp_path, data, max_epochs=1, max_steps=10**6, batch_tokens=3000)
    raw["data"].update(shuffle_buffer=250, vocab_sample_lines=250)
    raw["model"].update(emb_size=8, hidden_size=16, attention="dot")
    raw["train"]["progress"] = True  # a "step N/M" line every log_every steps, into the pipe
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    # training bounds oneDNN's cache of compiled primitives (cpu.bound_primitive_cache),
    # which would otherwise grow RSS for a thousand steps; what is left is the data's memory
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    p = subprocess.Popen([sys.executable, "-m", "tandem", "train", str(cfg)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    samples = []  # (training steps logged so far, RSS in MB)
    while p.poll() is None:
        rss = _rss_mb(p.pid)
        if rss is not None:
            samples.append((sum(x.startswith("step ") for x in list(lines)), rss))
        time.sleep(0.05)
    reader.join(60)
    out = "".join(lines)
    assert p.returncode == 0, out[-2000:]
    ck = checkpoint.load(tmp_path / "run/last.pt")
    assert ck["stream_position"]["pool"] == 23  # the whole corpus was read
    # warm: once 30 steps are logged (imports, model, first batches and pools done), however
    # fast the machine; from then on RSS holds one buffer, whatever the part of the corpus read
    warm = [rss for logged, rss in samples if logged >= 3]
    assert len(warm) > 10, (len(samples), out[-2000:])
    assert max(warm) - warm[0] < 15, (warm[0], max(warm))


@pytest.mark.slow
def test_resume_in_the_middle_of_the_stream_is_exact(tmp_path):
    data = corpus(tmp_path / "train.tsv.gz", 600)  # 3 buffers, about 40 batches
    whole = from_dict(_raw(tmp_path / "whole", data, max_steps=60))
    train(whole)
    part = _raw(tmp_path / "part", data, max_steps=23)
    train(from_dict(part))
    pos = checkpoint.load(tmp_path / "part/run/last.pt")["stream_position"]
    assert pos["pool"] >= 1 and pos["batch"] > 0  # inside a later pool
    part["train"]["max_steps"] = 60
    train(from_dict(part), resume=True)
    a = checkpoint.load(tmp_path / "whole/run/last.pt")
    b = checkpoint.load(tmp_path / "part/run/last.pt")
    assert a["train_state"]["epoch"] >= 1  # the run went past an epoch's end too
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["stream_position"] == b["stream_position"]


def test_streaming_refuses_what_it_cannot_stream(tmp_path):
    data = corpus(tmp_path / "t.tsv", 50)
    raw = _raw(tmp_path, data)
    raw["data"] = {"task": "reverse", "streaming": True}
    cfg = from_dict(raw)
    with pytest.raises(ConfigError, match="data.streaming"):
        StreamedSeq2SeqStructure.load(cfg)
    raw = _raw(tmp_path, data)
    raw["model"] = {"structure": "classify"}
    from tandem.structures import structure_for

    with pytest.raises(ConfigError, match="data.streaming.*classify"):
        structure_for(from_dict(raw))


def test_bad_lines_and_misaligned_files_are_named(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ab\tba\nno tab here\ncd\tdc\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: no tab"):
        _epoch(PairStream(str(bad)), 1)
    skipping = PairStream(str(bad), on_bad_line="skip")
    assert sum(len(b) for b, _ in _epoch(skipping, 1)) == 2 and skipping.stats.skipped == 1
    (tmp_path / "p.src").write_text("a\nb\nc\n")
    (tmp_path / "p.tgt").write_text("x\ny\n")
    with pytest.raises(DataError, match=r"p.tgt ends at line 2"):
        _epoch(PairStream(str(tmp_path / "p"), "src", "tgt"), 1)
    with pytest.raises(DataError, match="missing.tsv: file not found"):
        PairStream(str(tmp_path / "missing.tsv"))
    assert StreamPosition().state() == {"pool": 0, "offsets": [0], "line": 1, "batch": 0}
