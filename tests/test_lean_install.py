"""The lean install (`pip install tandem`, no extras): what it brings is permissively licensed
and holds no PyTorch, and the commands that run exports work without PyTorch, while those
that need it say so in one line with the install command (exit 2), never a traceback."""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.cli import TRAIN_EXTRA

# a child Python in which `import torch` (and the other train-extra modules) fails, as in a
# lean install, then the tandem command with the given arguments
NO_TRAIN = """
import sys
BLOCKED = {blocked!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
from tandem.cli import main
code = main(sys.argv[1:])
assert not BLOCKED & set(sys.modules), "a train-extra module was imported"
sys.exit(code)
"""


def lean(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TRAIN.format(blocked=set(TRAIN_EXTRA)),
                           *args], capture_output=True, text=True, cwd=cwd)


def base_requirements() -> dict[str, md.Distribution]:
    """Every distribution `pip install tandem` brings, following requirements (their own
    extras and other platforms' markers left out), by name."""
    from packaging.requirements import Requirement

    out: dict[str, md.Distribution] = {}
    todo = ["tandem"]
    while todo:
        dist = md.distribution(todo.pop())
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = req.name.lower().replace("_", "-")
            if name not in out:
                try:
                    out[name] = md.distribution(req.name)
                except md.PackageNotFoundError:
                    pytest.fail(f"{req.name}, required by {dist.metadata['Name']}, is not "
                                "installed")
                todo.append(req.name)
    return out


def test_the_lean_install_brings_no_torch_and_no_gpl():
    deps = base_requirements()
    assert "torch" not in deps and "onnxruntime" in deps and "numpy" in deps
    assert not {d.replace("-", "_") for d in deps} & set(TRAIN_EXTRA)
    gpl = []
    for name, dist in deps.items():
        m = dist.metadata
        text = " ".join([m.get("License-Expression") or "", (m.get("License") or "")[:300],
                         *(c for c in m.get_all("Classifier") or [] if c.startswith("Lic"))])
        if re.search(r"GPL|General Public License", text):
            gpl.append(f"{name}: {text[:80]}")
    assert not gpl, f"GPL-family licences in the lean install: {gpl}"


def test_the_shipped_dictionary_keeps_its_licence():
    from tandem.data.lexicon import CMUDICT

    licence = (CMUDICT.parent / "LICENSE.cmudict").read_text()
    assert "Carnegie Mellon University" in licence and "Redistribution" in licence


@pytest.mark.slow
def test_g2p_runs_without_torch():
    done = lean("g2p", "PHOENIX", "flibbertigibbet")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "PHOENIX\tF IY1 N IH0 K S" and lines[1].startswith("flibbertigibbet\t")
    import tandem

    assert [x.split("\t")[1] for x in lines] == tandem.g2p(["PHOENIX", "flibbertigibbet"])


@pytest.mark.slow
def test_g2p_text_runs_without_torch():
    """Text mode's parts (the homograph model, numbers, the G2P model) all run lean."""
    line = "Please record the flibbertigibbet's 2nd song for $5."
    done = lean("g2p", "--text", line)
    assert done.returncode == 0, done.stderr
    import tandem

    assert done.stdout.splitlines() == tandem.g2p_text(line)


@pytest.mark.slow
def test_a_command_that_needs_torch_says_so_in_one_line(tmp_path):
    done = lean("train", "configs/reverse.yaml", cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: tandem train needs the train extra (torch is not installed): "
        "pip install 'tandem[train]'"]
    ckpt = Path(__file__).resolve().parents[1] / "models" / "g2p_en.pt"
    done = lean("g2p", "--model", str(ckpt), "--no-dictionary", "abc")
    assert done.returncode == 2 and "needs the train extra" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_export_translates_predicts_and_serves_without_torch(tmp_path):
    import tandem
    from tandem.export import export
    from test_export import checkpoint_of, classify_cfg, seq2seq_cfg

    ckpt = checkpoint_of(seq2seq_cfg(tmp_path), tmp_path / "m.pt", steps=3)
    folder = export(ckpt, tmp_path / "export")
    (tmp_path / "in.txt").write_text("abc\nhello\n")
    done = lean("translate", "--model", str(folder), "--input", str(tmp_path / "in.txt"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == tandem.load(ckpt, device="cpu").translate(["abc", "hello"])
    # scored as its checkpoint is: the config's test split, the same metrics
    done = lean("evaluate", "--model", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout)
    want = tandem.load(ckpt, device="cpu").evaluate()
    assert scored["sentences"] == want["sentences"] > 0
    for metric in ("exact_match", "seq_error_rate", "token_error_rate"):
        assert scored[metric] == pytest.approx(want[metric])
    (tmp_path / "c").mkdir()
    cls = export(checkpoint_of(classify_cfg(tmp_path / "c"), tmp_path / "c.pt", steps=2),
                 tmp_path / "cexport")
    (tmp_path / "texts.txt").write_text("good film\nbad awful film\n")
    done = lean("predict", "--model", str(cls), "--input", str(tmp_path / "texts.txt"))
    assert done.returncode == 0, done.stderr
    assert [x.split("\t")[0] for x in done.stdout.splitlines()] == [
        top[0][0] for top in tandem.load(tmp_path / "c.pt", device="cpu").predict(
            ["good film", "bad awful film"])]
    code = ("import sys\n"
            "sys.meta_path.insert(0, type('B', (), {'find_spec': lambda s, n, p=None, t=None:"
            " (_ for _ in ()).throw(ModuleNotFoundError(n, name=n))"
            " if n.split('.')[0] == 'torch' else None})())\n"
            "import tandem.runtime\n"
            "from fastapi.testclient import TestClient\n"
            "from tandem.serve import ServeOptions, create_app\n"
            f"app = create_app(tandem.runtime.load({str(folder)!r}), ServeOptions())\n"
            "with TestClient(app) as c:\n"
            "    print(c.post('/v1/translate', json={'inputs': ['abc']}).json()['outputs'][0])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == tandem.load(ckpt, device="cpu").translate(["abc"])[0]


@pytest.mark.slow
def test_the_python_api_loads_an_export_without_importing_torch():
    """`tandem.load(EXPORT)` runs in the lean runtime even where PyTorch is installed (here it
    is), so loading an export never pays PyTorch's import."""
    from tandem.pronounce.homographs import PACKAGE_MODEL

    code = ("import sys, tandem; m = tandem.load(sys.argv[1]); "
            "print(type(m).__name__, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(PACKAGE_MODEL)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["RuntimeClassifier", "False"]
