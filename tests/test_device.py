"""Where the math runs: device names, checkpoints that load anywhere, and (on a machine with a
CUDA GPU) the same answers on the GPU as on the CPU. The CUDA tests skip where torch sees no
GPU; `pytest tests/test_device.py` on a GPU machine runs them."""

import subprocess
import sys

import pytest
import torch

from tandem import checkpoint
from tandem.config import from_dict
from tandem.cpu import resolve_device
from tandem.data.batching import collate
from tandem.errors import ConfigError
from tandem.structures.translator import Translator, load
from tandem.train.trainer import Trainer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


def _cfg(run, device: str, steps: int = 30, **train):
    return from_dict({
        "name": "dev", "run_dir": str(run),
        "data": {"task": "reverse", "task_sizes": [300, 30, 30], "task_max_len": 6},
        "model": {"cell": "lstm", "emb_size": 16, "hidden_size": 32, "dropout": 0.1,
                  "conditioning": "attention", "attention": "general"},
        "train": {"max_steps": steps, "valid_every": 15, "batch_tokens": 300, "lr": 0.01,
                  "progress": False, "threads": 1, "keep_last": 2, "device": device,
                  **train},
    })


# --- everywhere --------------------------------------------------------------------------
def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match=r"--device = 'gpu'.*auto, cpu, cuda, cuda:N"):
        resolve_device("gpu", "--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU machine")
def test_asking_for_cuda_without_a_gpu_names_the_key():
    with pytest.raises(ConfigError, match=r"train.device = 'cuda'.*sees no CUDA GPU"):
        resolve_device("cuda", "train.device")


def test_config_refuses_a_bad_device_name(tmp_path):
    with pytest.raises(ConfigError, match=r"train.device = 'tpu' is not allowed"):
        _cfg(tmp_path, "tpu")


@pytest.mark.slow
def test_cli_bad_device_exits_2_with_the_flag_named(tmp_path, attention_checkpoint):
    r = subprocess.run([sys.executable, "-m", "tandem.cli", "translate", "--model",
                        str(attention_checkpoint), "--device", "npu"], input="abc\n",
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "--device = 'npu'" in r.stderr and "Traceback" not in r.stderr


def test_checkpoints_get_detached_cpu_copies_in_the_same_structure():
    w = torch.ones(2, requires_grad=True)
    obj = {"model": {"w": w * 2}, "optimizer": {"state": {0: {"m": [torch.zeros(1)]}}},
           "rng": (torch.zeros(3, dtype=torch.uint8), 5)}
    out = checkpoint.on_cpu(obj)
    assert not out["model"]["w"].requires_grad and out["model"]["w"].grad_fn is None
    assert torch.equal(out["model"]["w"], torch.full((2,), 2.0))
    assert isinstance(out["rng"], tuple) and out["rng"][1] == 5
    assert isinstance(out["optimizer"]["state"][0]["m"], list)
    # that tensors on a GPU come back on the CPU is checked by the CUDA test below


def test_translator_runs_where_it_is_asked(attention_checkpoint):
    tr = load(attention_checkpoint, device="cpu")
    assert tr.device == torch.device("cpu")
    assert tr.to("auto").device == resolve_device("auto")


# --- on a CUDA GPU -------------------------------------------------------------------------
@pytest.fixture
def exact_fp32():
    """No TF32 in cuDNN/cuBLAS, so GPU and CPU float32 results agree closely."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@cuda
def test_training_on_cuda_writes_cpu_checkpoints_and_resumes(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer.from_config(_cfg(run, "cuda", steps=30))
    assert next(trainer.model.parameters()).is_cuda
    trainer.train()
    ckpt = torch.load(run / "last.pt", map_location=None, weights_only=True)
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    assert "cuda" in ckpt["rng"]
    # resume on the GPU, then again on the CPU: both continue from step 30
    gpu = Trainer.from_config(_cfg(run, "cuda", steps=45))
    gpu.resume()
    assert gpu.state.step == 30
    gpu.train()
    assert gpu.state.step == 45
    cpu = Trainer.from_config(_cfg(run, "cpu", steps=60))
    cpu.resume()
    assert cpu.state.step == 45 and not next(cpu.model.parameters()).is_cuda
    cpu.train()
    assert cpu.state.step == 60


@cuda
def test_cuda_and_cpu_give_the_same_logits_and_outputs(tmp_path, attention_checkpoint,
                                                       exact_fp32):
    cpu, gpu = load(attention_checkpoint, device="cpu"), load(attention_checkpoint, device="cuda")
    assert gpu.device.type == "cuda"
    words = ["abc", "hello", "a", "zyxwv", "queue"]
    ids = [(cpu.fields.src_vocab.encode(list(w)), cpu.fields.tgt_vocab.encode(
        list(w[::-1]), add_bos=True, add_eos=True)) for w in words]
    b = collate(ids, list(range(len(ids))))
    with torch.no_grad():
        ref = cpu.model(b.src, b.src_len, b.tgt_in)
        got = gpu.model(*(t.cuda() for t in (b.src, b.src_len, b.tgt_in)))
    torch.testing.assert_close(got.cpu(), ref, atol=1e-4, rtol=1e-4)
    for beam in (1, 4):
        a = cpu.translate_full(words, beam=beam, nbest=min(beam, 2))
        g = gpu.translate_full(words, beam=beam, nbest=min(beam, 2))
        assert [[h.text for h in r] for r in g] == [[h.text for h in r] for r in a]
        for ra, rg in zip(a, g, strict=True):
            for ha, hg in zip(ra, rg, strict=True):
                assert abs(ha.score - hg.score) < 1e-3


@cuda
def test_cuda_ensemble_sampling_and_bf16(attention_checkpoint):
    ens = load(attention_checkpoint, attention_checkpoint, device="cuda")
    one = load(attention_checkpoint, device="cuda")
    assert ens.translate(["abcd"], beam=3) == one.translate(["abcd"], beam=3)
    gen = torch.Generator(device="cuda").manual_seed(3)
    out = one.translate_full(["abcd"], sample=True, generator=gen, temperature=0.7)
    assert isinstance(out[0][0].text, str)
    assert len(one.translate(["abcd", "xyz"], beam=3, bf16=True)) == 2


@cuda
def test_int8_moves_a_gpu_model_to_the_cpu(attention_checkpoint):
    tr = load(attention_checkpoint, device="cuda").quantize("int8")
    assert tr.device.type == "cpu"
    assert len(tr.translate(["abc"], beam=2)) == 1


@cuda
def test_cli_translates_on_cuda(attention_checkpoint, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tandem.cli", "translate", "--model",
                        str(attention_checkpoint), "--device", "cuda", "--beam", "3"],
                       input="abc\nhello\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cpu = load(attention_checkpoint, device="cpu").translate(["abc", "hello"], beam=3)
    assert r.stdout.splitlines() == cpu


@cuda
def test_translator_device_follows_a_model_moved_later(attention_checkpoint):
    tr = load(attention_checkpoint, device="cpu")
    assert isinstance(tr, Translator) and tr.to("cuda").device.type == "cuda"
    assert tr.translate(["abc"], beam=2) == load(attention_checkpoint, device="cpu").translate(
        ["abc"], beam=2)
