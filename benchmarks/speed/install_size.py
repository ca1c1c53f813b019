"""How much does installing tandem take: the lean install (`pip install tandem`: numpy and
onnxruntime, no PyTorch) against the full one (`pip install "tandem[train]"`)?

    .venv/bin/python benchmarks/speed/install_size.py [--keep DIR]

Each is installed from this checkout (not editable) into a fresh venv; the size is that of the
venv's site-packages (pip itself and setuptools subtracted), with the largest distributions
listed. torch is installed first in the full venv, pinned as the Makefile does, so pip never
fetches a CUDA build. Also measured in the lean venv: `tandem g2p` of one word the dictionary
lacks, and that `import torch` fails there. Writes benchmarks/results/install-size-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

ROOT = Path(__file__).resolve().parents[2]
SIZES = """
import importlib.metadata as md, json, pathlib
out = {}
for d in md.distributions():
    total = 0
    for f in d.files or []:
        p = pathlib.Path(d.locate_file(f))
        if p.is_file():
            total += p.stat().st_size
    out[d.metadata["Name"]] = total
print(json.dumps(out))
"""


def venv(path: Path, *installs: list[str]) -> dict[str, int]:
    """Make a venv at `path`, run each pip install, -> {distribution: bytes}."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q"]
    for args in installs:
        subprocess.run(pip + args, check=True)
    out = subprocess.run([str(path / "bin" / "python"), "-c", SIZES], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def summary(sizes: dict[str, int]) -> dict:
    tools = {"pip", "setuptools", "wheel"}
    kept = {k: v for k, v in sizes.items() if k.lower() not in tools}
    top = sorted(kept.items(), key=lambda kv: -kv[1])[:8]
    return {"total_mb": round(sum(kept.values()) / 1e6, 1), "distributions": len(kept),
            "largest_mb": {k: round(v / 1e6, 1) for k, v in top}}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--keep", type=Path, help="make the venvs here and keep them")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    root = a.keep or Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    lean = venv(root / "lean", [str(ROOT)])
    lean_s = time.perf_counter() - t0
    probe = subprocess.run([str(root / "lean" / "bin" / "tandem"), "g2p", "flibbertigibbet"],
                           capture_output=True, text=True)
    torch_missing = subprocess.run([str(root / "lean" / "bin" / "python"), "-c",
                                    "import torch"], capture_output=True).returncode != 0
    t0 = time.perf_counter()
    full = venv(root / "full", ["torch==2.13.0"], [f"{ROOT}[train]"])
    full_s = time.perf_counter() - t0
    body = {"lean": {**summary(lean), "install_s": round(lean_s, 1),
                     "g2p_ok": probe.returncode == 0, "g2p_output": probe.stdout.strip(),
                     "torch_importable": not torch_missing},
            "full": {**summary(full), "install_s": round(full_s, 1)}}
    out = write_report(a.results, "install-size", "", body)
    print(json.dumps(body, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
