import io
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from tandem.cli import main
from tandem.config import ModelConfig
from tandem.model.seq2seq import Seq2Seq


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
    # in-process training (cpu.configure) flushes subnormal floats to zero, process-wide;
    # hypothesis' float strategies refuse to run in that state, so each test ends without it
    torch.set_flush_denormal(False)


@pytest.fixture
def tandem_log():
    """The records the "tandem" logger emits during the test, at INFO and above, whatever
    its propagation (the CLI may have turned it off)."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("tandem")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def cli(monkeypatch, capsys):
    """`cli(cwd, *args, stdin=...)` runs `tandem ARGS` in this process from `cwd`: its exit
    code, stdout and stderr, shaped like a finished process's."""

    def run(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()),
                                                           encoding="utf-8"))
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse refuses a flag's value this way
            code = e.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


def run_config(run_dir, name: str, model: dict, **train) -> dict:
    """A raw config for a short training run on `reverse` (300 pairs of up to 8 characters)
    in `run_dir`; `train` overrides the train section."""
    return {
        "name": name, "run_dir": str(run_dir),
        "data": {"task": "reverse", "task_sizes": [300, 20, 20], "task_max_len": 8},
        "model": {"emb_size": 16, "hidden_size": 32, **model},
        "train": {"batch_tokens": 300, "lr": 0.005, "progress": False, "threads": 1, **train},
    }


def tiny_model(src_vocab: int = 20, tgt_vocab: int = 25, **kw) -> Seq2Seq:
    opts = dict(emb_size=8, hidden_size=16, dropout=0.0)
    opts.update(kw)
    return Seq2Seq(ModelConfig(**opts), src_vocab, tgt_vocab)


def padded_batch(lengths: list[int], vocab: int = 20, pad_to: int | None = None):
    """Random source ids (B, S) with ids >= 4 (no specials) and trailing padding."""
    width = pad_to or max(lengths)
    src = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,))
    return src, torch.tensor(lengths)


# Property tests draw the same examples on every run unless asked to explore, so a CI run
# cannot fail on a draw nobody has seen; `HYPOTHESIS_PROFILE=explore make test` draws anew.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))


@pytest.fixture(scope="session")
def attention_checkpoint(tmp_path_factory):
    """A small attention model trained briefly on `reverse` (shared by server/plot tests)."""
    from tandem.config import from_dict
    from tandem.train.trainer import train

    run = tmp_path_factory.mktemp("attn") / "run"
    cfg = from_dict({
        "name": "tiny-attn", "run_dir": str(run),
        "data": {"task": "reverse", "task_sizes": [600, 50, 50], "task_max_len": 6},
        "model": {"cell": "gru", "emb_size": 16, "hidden_size": 32,
                  "conditioning": "attention", "attention": "general"},
        "train": {"max_steps": 200, "valid_every": 100, "batch_tokens": 600, "lr": 0.01,
                  "progress": False,
                  "threads": 1, "keep_last": 1, "log_every": 5},
    })
    train(cfg)
    return run / "best.pt"


@pytest.fixture(scope="session")
def other_checkpoint(attention_checkpoint, tmp_path_factory):
    """A different model over the same vocabularies: the attention model's weights with
    seeded noise (its outputs differ from the attention model's)."""
    from tandem import checkpoint

    ckpt = checkpoint.load(attention_checkpoint)
    g = torch.Generator().manual_seed(5)
    for k, v in ckpt["model"].items():
        if v.is_floating_point():
            ckpt["model"][k] = v + 0.3 * torch.randn(v.shape, generator=g)
    return checkpoint.save(ckpt, tmp_path_factory.mktemp("other") / "other.pt")


@contextmanager
def live_server(app):
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yields the URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


STRUCTURE_STEPS = {"classify": 150, "tag": 150, "lm": 120, "generate": 150}


@pytest.fixture(scope="session")
def structure_models(tmp_path_factory):
    """One tiny model per structure beyond seq2seq (tests/structdata.py's data), trained with
    `tandem train CONFIG` once per session: {structure: path of its best.pt}."""
    import yaml

    from structdata import STRUCTURES, config_dict
    from tandem.cli import main

    root = tmp_path_factory.mktemp("structures")
    out = {}
    for s in STRUCTURES:
        raw = config_dict(s, root / s / "run", max_steps=STRUCTURE_STEPS[s], valid_every=50)
        raw["train"]["lr"] = 0.02
        cfg = root / s / "config.yaml"
        cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
        assert main(["train", str(cfg)]) == 0
        out[s] = root / s / "run" / "best.pt"
    return out
