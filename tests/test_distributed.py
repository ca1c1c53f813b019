"""Data-parallel training under torchrun (tandem/train/distributed.py and the Trainer's ranks):
two gloo ranks on loopback train exactly what one process trains, for every structure; one
rank writes the run folder; resume is exact, also with another number of ranks; a killed rank
ends the job, not hangs it, and the run resumes; a signal checkpoints; several machines' launch
(simulated on one) works, and a launcher left alone at the rendezvous fails, not hangs."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import run_config
from structdata import STRUCTURES, config_dict
from tandem import checkpoint
from tandem.config import from_dict
from tandem.structures.base import Structure
from tandem.structures.lm import LM as LMStructure
from tandem.train.distributed import Ranks, rank_threads, torchrun_command
from tandem.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
STEPS = 4
TIMEOUT = 240  # a hung launch fails the test instead of the suite


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"),
                                         env.get("PYTHONPATH", "")])
    return env


def _torchrun(args: list[str], cwd: Path | None = None, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def _finish(p: subprocess.Popen, timeout: float = TIMEOUT) -> str:
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{out[-3000:]}")
    return out


def _tandem(args: list[str], nproc: int = 1, cwd: Path | None = None) -> str:
    """`tandem ARGS` in one process, or `tandem ARGS --nproc N` (torchrun); its output, the
    test failing when it fails."""
    cmd = [sys.executable, "-m", "tandem", *args] + (["--nproc", str(nproc)] if nproc > 1
                                                     else [])
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p.stdout + p.stderr


def _seq2seq(run: Path, model: dict, **train) -> dict:
    return run_config(run, "s2s", {"dropout": 0.0, **model},
                      **{"tensorboard": False, "keep_last": 0, "valid_every": 10**6,
                         "log_every": 1, **train})


def _weights(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().clone() for k, v in state.items()}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# --- K steps on 2 ranks = K steps in one process -----------------------------------------------


def _equivalence_configs(tmp: Path) -> dict[str, dict]:
    configs = {
        "attention": _seq2seq(tmp / "attention", {"attention": "additive",
                                                  "input_feeding": True}),
        "init": _seq2seq(tmp / "init", {"cell": "gru", "conditioning": "init"}),
        # every batch one example: rank 1 trains a weight-0 stand-in each step
        "one_per_batch": _seq2seq(tmp / "one", {"attention": "general"}, batch_tokens=12),
        # dot attention (scheduled sampling below 1 draws per rank, so it is not compared)
        "dot": _seq2seq(tmp / "dot", {"attention": "dot"}),
    }
    # a streamed corpus: the ranks read the same stream and train their shares of it
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 8))) for _ in range(400)]
    (tmp / "stream.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    streamed = _seq2seq(tmp / "streamed", {"attention": "general"})
    streamed["data"] = {"train": str(tmp / "stream.tsv"), "streaming": True,
                        "shuffle_buffer": 100}
    configs["streamed"] = streamed
    configs["nan_on_rank_1"] = _seq2seq(tmp / "nan", {"attention": "general"})
    for s in STRUCTURES:
        raw = config_dict(s, tmp / s / "run")
        raw["model"]["dropout"] = 0.0
        configs[s] = raw
    return configs


@pytest.fixture(scope="module")
def two_rank_weights(tmp_path_factory) -> tuple[dict[str, dict], dict[str, dict]]:
    """({name: raw config}, {name: (weights after STEPS steps on 2 ranks, rows each rank
    trained on)})."""
    tmp = tmp_path_factory.mktemp("ddp")
    configs = _equivalence_configs(tmp)
    spec = tmp / "spec.json"
    spec.write_text(json.dumps(configs))
    out = tmp / "out"
    out.mkdir()
    p = _torchrun(["--standalone", "--nproc-per-node=2", str(ROOT / "tests/dist_worker.py"),
                   str(spec), str(STEPS), str(out)])
    log = _finish(p)
    assert p.returncode == 0, log[-4000:]
    return configs, {n: (_weights(torch.load(out / f"{n}.pt")),
                         json.loads((out / f"{n}.json").read_text())) for n in configs}


@pytest.mark.slow  # torchrun
@pytest.mark.parametrize("name", ["attention", "init", "one_per_batch", "dot",
                                  "streamed", *STRUCTURES])
def test_two_ranks_train_what_one_process_trains(two_rank_weights, name):
    configs, weights = two_rank_weights
    trainer = Trainer.from_config(from_dict(configs[name]))
    start = _weights(trainer.model.state_dict())
    batches = trainer.batches()
    rows = 0
    for _ in range(STEPS):
        batch = next(batches)
        rows += len(batch)
        trainer.train_step(batch)
    one = _weights(trainer.model.state_dict())
    two, report = weights[name]
    per_rank = report["rows"]
    assert _max_diff(one, two) < 1e-5
    assert _max_diff(one, start) > 1e-3  # the steps did train
    # ... on the global batches split between the ranks, not each rank on all of them
    assert sum(per_rank) == rows
    assert per_rank[1] == 0 if name == "one_per_batch" else min(per_rank) > 0
    assert report["param_sums"][0] == report["param_sums"][1]  # the ranks agree exactly


@pytest.mark.slow  # torchrun
def test_a_nan_on_one_rank_skips_the_step_on_every_rank(two_rank_weights):
    _, weights = two_rank_weights
    two, report = weights["nan_on_rank_1"]
    assert report["skipped"] == [1, 1]  # step 2 on both ranks; the other 3 trained
    assert report["param_sums"][0] == report["param_sums"][1]


def test_shares_cover_every_example_once():
    s = Structure.__new__(Structure)
    item = list(range(7))
    parts = [s.share(item, r, 3) for r in range(3)]
    assert sorted(i for p, _ in parts for i in p) == item
    assert all(not empty for _, empty in parts)
    part, empty = s.share([5], 1, 2)
    assert empty and part == [5]  # the stand-in, weighted 0


def test_lm_streams_split_into_contiguous_rows():
    lm = LMStructure.__new__(LMStructure)
    lm.streams, lm.bptt = 10, 4
    rows = [lm.rows(r, 3) for r in range(3)]
    assert rows == [(0, 4), (4, 7), (7, 10)]
    lm.check_ranks(10)
    with pytest.raises(Exception, match="streams cannot be shared by 11 ranks"):
        lm.check_ranks(11)


def test_rank_threads_share_the_cores():
    assert rank_threads(3, 8) == 3  # the user's choice stands
    assert rank_threads(None, 10**6) == 1
    assert Ranks().sum([1.0, 2.0]) == [1.0, 2.0] and Ranks().gather(5) == [5]
    cmd = torchrun_command(4, ["train", "c.yaml"])
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc-per-node=4" in cmd and cmd[-3:] == ["tandem", "train", "c.yaml"]


# --- the CLI under torchrun: one writer, exact resume, faults --------------------------------


def _config_file(tmp: Path, run: str, **train) -> Path:
    raw = _seq2seq(Path(run), {"attention": "general", "dropout": 0.3},
                   **{"valid_every": 10, "keep_last": 1, "log_every": 5,
                      "valid_max_sentences": 10, **train})
    path = tmp / f"{Path(run).name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _params(run: Path) -> dict:
    return checkpoint.load(run / "last.pt")["model"]


@pytest.mark.slow  # torchrun
def test_resume_under_ddp_is_exact_and_another_world_size_continues(tmp_path):
    whole = _config_file(tmp_path, str(tmp_path / "whole"), max_steps=30)
    _tandem(["train", str(whole)], nproc=2)
    part = _config_file(tmp_path, str(tmp_path / "part"), max_steps=20)
    _tandem(["train", str(part)], nproc=2)
    assert checkpoint.load(tmp_path / "part/last.pt")["world_size"] == 2
    _tandem(["train", "--resume", str(tmp_path / "part"), "--set", "train.max_steps=30"],
            nproc=2)
    a, b = _params(tmp_path / "whole"), _params(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical, dropout included
    # the log is one run's: validations at 10, 20, 30 once each
    steps = [json.loads(x)["step"] for x in (tmp_path / "part/valid.jsonl").open()]
    assert steps == [10, 20, 30]
    # with one process instead of two: it goes on from the same global batch, and says so
    out = _tandem(["train", "--resume", str(tmp_path / "part"), "--set",
                   "train.max_steps=40"])
    assert "resuming a run of 2 rank(s) with 1" in out
    ck = checkpoint.load(tmp_path / "part/last.pt")
    assert ck["train_state"]["step"] == 40 and ck["world_size"] == 1


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(x) for x in out.split()]


def _wait_for(path: Path, p: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    end = time.time() + timeout
    while not path.exists():
        if p.poll() is not None or time.time() > end:
            pytest.fail(f"{path} never appeared:\n{_finish(p)[-3000:]}")
        time.sleep(0.2)


def _long_two_rank_run(tmp_path: Path) -> subprocess.Popen:
    """`tandem train --nproc 2` of a run too long to finish, once its first checkpoint is
    written."""
    cfg = _config_file(tmp_path, str(tmp_path / "run"), max_steps=100000, valid_every=20,
                       batch_tokens=200)
    p = subprocess.Popen([sys.executable, "-m", "tandem", "train", str(cfg), "--nproc", "2"],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    _wait_for(tmp_path / "run/last.pt", p)
    return p


@pytest.mark.slow
def test_killed_rank_ends_the_job_and_resume_finishes_it(tmp_path):
    """The survivor does not wait for its lost peer: the job ends by itself, failing and
    naming the killed rank (TIMEOUT, minutes above the seconds this takes, only bounds a
    hang); the run folder keeps the last validation's checkpoint, which resume continues."""
    p = _long_two_rank_run(tmp_path)
    agent = _children(p.pid)
    workers = [c for a in agent for c in _children(a)]
    assert len(workers) == 2, (agent, workers)
    os.kill(max(workers), signal.SIGKILL)  # the later-started worker: rank 1
    out = _finish(p)
    assert p.returncode != 0
    assert "rank" in out and ("SIGKILL" in out or "Signal 9" in out or "-9" in out)
    # a checkpoint needs every rank (their random states), so the only ones written are
    # validations' (valid_every 20), whole: none from the moment of the kill
    left = checkpoint.load(tmp_path / "run/last.pt")["train_state"]["step"]
    assert left >= 20 and left % 20 == 0
    _tandem(["train", "--resume", str(tmp_path / "run"), "--set",
             f"train.max_steps={left + 10}"], nproc=2)
    assert checkpoint.load(tmp_path / "run/last.pt")["train_state"]["step"] == left + 10


@pytest.mark.slow  # torchrun
def test_sigterm_to_the_launcher_checkpoints_every_rank_stops(tmp_path):
    p = _long_two_rank_run(tmp_path)
    before = checkpoint.load(tmp_path / "run/last.pt")["train_state"]["step"]
    agent = _children(p.pid)
    os.kill(agent[0], signal.SIGTERM)  # what a scheduler does to the torchrun launcher
    out = _finish(p, 90)
    assert "stopped at step" in out and "--resume" in out
    after = checkpoint.load(tmp_path / "run/last.pt")["train_state"]["step"]
    assert after > before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # torchrun
def test_two_machines_simulated_one_run_folder_by_rank_zero(tmp_path):
    """Two torchrun launchers, --nnodes 2, c10d rendezvous on 127.0.0.1, each in its own
    folder (as two machines would be): the run folder appears on node 0's side only."""
    cfg = _config_file(tmp_path, "runs/two", max_steps=20)
    port = _free_port()
    nodes = []
    for i in range(2):
        cwd = tmp_path / f"node{i}"
        cwd.mkdir()
        nodes.append(_torchrun(["--nnodes=2", "--nproc-per-node=1", f"--node-rank={i}",
                                "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                                "--rdzv-id=t", "-m", "tandem", "train", str(cfg)], cwd=cwd))
    logs = [_finish(n) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], logs
    assert (tmp_path / "node0/runs/two/last.pt").is_file()
    assert not (tmp_path / "node1/runs").exists()
    assert checkpoint.load(tmp_path / "node0/runs/two/last.pt")["world_size"] == 2


@pytest.mark.slow  # torchrun
def test_a_launcher_alone_at_the_rendezvous_fails_with_an_error(tmp_path):
    cfg = _config_file(tmp_path, "runs/alone", max_steps=5)
    p = _torchrun(["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
                   f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "--rdzv-conf=join_timeout=5",
                   "-m", "tandem", "train", str(cfg)], cwd=tmp_path)
    out = _finish(p, 120)
    assert p.returncode != 0
    assert "timeout" in out.lower() or "timed out" in out.lower()
