"""`tandem train`, `average`, `data` and `bench`: making models (and the data of the built-in
tasks), and timing training on this machine."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tandem.cli.args import file_tag, positive
from tandem.errors import ConfigError


def cmd_train(a: argparse.Namespace) -> int:
    """`tandem train CONFIG` or `tandem train --resume RUN` (--set overrides either)."""
    from tandem.config import load_config
    from tandem.train import distributed
    from tandem.train.trainer import train

    if a.nproc is not None and not distributed.launched():
        return distributed.run_torchrun(a.nproc, without_nproc(a.argv))
    overrides = a.set + ([f"train.device={a.device}"] if a.device else [])
    if a.resume:
        run = Path(a.resume)
        if not (run / "config.yaml").is_file():
            raise ConfigError(f"--resume {run}: not a run folder (no config.yaml in it); give "
                              "the run_dir of an earlier tandem train")
        cfg = load_config(run / "config.yaml", overrides)
        cfg.run_dir = str(run)
    else:
        if a.config is None:
            raise ConfigError("tandem train: give a config file, or --resume RUN_DIR")
        cfg = load_config(a.config, overrides)
    out = train(cfg, resume=bool(a.resume), overwrite=a.overwrite)
    if os.environ.get("RANK", "0") == "0":  # under torchrun rank 0 speaks for the run
        print(f"run folder: {out}\nbest model: {out / 'best.pt'}")
    return 0


def without_nproc(argv: list[str]) -> list[str]:
    """A command line without its `--nproc N` / `--nproc=N` (what each rank runs)."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
        elif x == "--nproc":
            skip = True
        elif not x.startswith("--nproc="):
            out.append(x)
    return out


def cmd_average(a: argparse.Namespace) -> int:
    """`tandem average CKPT... --out FILE`: the mean of checkpoints of one run."""
    from tandem.train.average import average

    out = average(a.checkpoints, a.out)
    print(f"averaged {len(a.checkpoints)} checkpoints -> {out}")
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    """`tandem data`: write a built-in task's splits as TSV files."""
    from tandem.data.tasks import write_splits

    paths = write_splits(a.task, a.out, tuple(a.sizes), a.seed, a.min_len, a.max_len)
    for split, p in paths.items():
        print(f"{split}: {p}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    """`tandem bench`: time training and searches on this machine."""
    from tandem.bench import main as bench_main

    bench_main(a.sizes, a.quick, a.out, a.variants, a.device, a.batch_tokens, a.tag or "",
               a.steps, a.sentences)
    return 0


# --- the parsers ----------------------------------------------------------------------------


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", nargs="?", help="YAML config file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden_size=512")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints and logs of an earlier run in the run folder")
    t.add_argument("--device", help="the same as --set train.device=... (auto, cpu, cuda, "
                   "cuda:N)")
    t.add_argument("--nproc", type=int, metavar="N",
                   help="train with N data-parallel ranks on this machine (starts torchrun; "
                   "for several machines run torchrun yourself, see docs/distributed.md)")
    t.set_defaults(func=cmd_train)


def _average_parser(sub) -> None:
    av = sub.add_parser("average", help="average the parameters of checkpoints of one run")
    av.add_argument("checkpoints", nargs="+")
    av.add_argument("--out", required=True)
    av.set_defaults(func=cmd_average)


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="training and search speed on this machine, against its "
                       "matmul peak")
    b.add_argument("--sizes", nargs="+", default=["small", "base"], choices=["small", "base"],
                   help="LSTM models to time: small (1 layer, hidden 256), base (2 layers, "
                        "hidden 512)")
    b.add_argument("--variants", nargs="+", choices=["init", "every_step", "additive",
                                                     "additive+feed", "general", "general+feed"],
                   help="the decoder variants to time (default: all)")
    b.add_argument("--quick", action="store_true", help="fewer steps and sentences")
    b.add_argument("--steps", type=positive,
                   help="timed training steps per model (default 10, 3 with --quick)")
    b.add_argument("--sentences", type=positive,
                   help="sentences decoded per search rate (default 24 at batch 1 and 192 at "
                        "batch 64, 8 and 64 with --quick)")
    b.add_argument("--out", default=".", help="folder for the result's JSON file")
    b.add_argument("--tag", default=None, type=file_tag,
                   help="appended to the result's file name (speed-<date>[-device]-TAG.json), "
                        "so a second run on one day keeps the first")
    b.add_argument("--device", default="cpu",
                   help="cpu (the default: the whole benchmark), or cuda / cuda:N (speed, "
                        "utilisation and bf16 on the GPU; no int8)")
    b.add_argument("--batch-tokens", type=positive, default=4000,
                   help="training batch size in tokens")
    b.set_defaults(func=cmd_bench)


def _data_parser(sub) -> None:
    d = sub.add_parser("data", help="write a built-in task's train/dev/test TSV files")
    d.add_argument("task", help="copy, reverse, sort, addition or dates")
    d.add_argument("--out", required=True)
    d.add_argument("--sizes", type=int, nargs=3, default=[20000, 1000, 1000],
                   metavar=("TRAIN", "DEV", "TEST"))
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--min-len", type=int, default=1)
    d.add_argument("--max-len", type=int, default=15)
    d.set_defaults(func=cmd_data)


PARSERS = {"train": _train_parser, "average": _average_parser, "bench": _bench_parser,
           "data": _data_parser}
"""{command: the function that adds its parser to the subparsers}."""
