"""`tandem export`: a trained model as ONNX graphs and a manifest, for the lean runtime
(`tandem.runtime`, numpy + onnxruntime) or any onnxruntime binding."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("tandem")


def cmd_export(a: argparse.Namespace) -> int:
    """`tandem export`: write the export folder, then list its files and sizes."""
    from tandem.export import describe, export

    out = export(a.model, a.out, a.quantize, a.overwrite)
    info = describe(out)
    total = sum(info["files"].values())
    for name, size in sorted(info["files"].items()):
        print(f"{out / name}\t{size / 1e6:.2f} MB")
    log.info("exported a %s model (%s) to %s: %.2f MB in all; run it with "
             "tandem.runtime.load(%r) or any tandem command that takes --model", info["structure"],
             info["precision"], out, total / 1e6, str(out))
    return 0


def add_export(sub) -> None:
    e = sub.add_parser("export", help="a model as ONNX graphs and a manifest, for the lean "
                       "runtime (numpy + onnxruntime, no PyTorch)")
    e.add_argument("--model", required=True, help="checkpoint to export (.pt)")
    e.add_argument("--out", required=True,
                   help="the export folder to create (its parent is created too)")
    e.add_argument("--quantize", choices=["int8"], default=None,
                   help="int8: dynamic int8 weights of the MatMul and LSTM nodes "
                   "(onnxruntime quantize_dynamic); default float32")
    e.add_argument("--overwrite", action="store_true",
                   help="replace an existing export folder (only once the new one is complete)")
    e.set_defaults(func=cmd_export)


PARSERS = {"export": add_export}
