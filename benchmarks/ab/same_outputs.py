"""Train four small models with the tandem on PYTHONPATH and write their weights' sha256 and
their greedy, beam 5 and int8 outputs to OUT/result.json, to compare two source trees:

    PYTHONPATH=/work/before/src .venv/bin/python benchmarks/ab/same_outputs.py /tmp/a
    PYTHONPATH=src .venv/bin/python benchmarks/ab/same_outputs.py /tmp/b
    cmp /tmp/a/result.json /tmp/b/result.json
"""
import hashlib
import json
import sys

import torch

from tandem.config import from_dict
from tandem.structures.translator import load
from tandem.train.trainer import train

out_dir, result = sys.argv[1], {}
LSTM2 = {"cell": "lstm", "enc_layers": 2, "dec_layers": 2}
CASES = {
    "lstm-additive-feed": ("reverse", dict(LSTM2, attention="additive", input_feeding=True)),
    "gru-general": ("dates", {"cell": "gru", "attention": "general"}),
    "lstm-additive": ("sort", {"cell": "lstm", "attention": "additive"}),
    "rnn-every": ("copy", {"cell": "rnn", "conditioning": "every_step", "bridge": "pooled"}),
}
INPUTS = ["abcdef", "hello world", "12 3 45", "March 3rd, 1999", "zyx"]
for name, (task, model) in CASES.items():
    cfg = from_dict({
        "run_dir": f"{out_dir}/{name}",
        "data": {"task": task, "task_sizes": [1500, 60, 60], "task_max_len": 10},
        "model": dict(model, emb_size=16, hidden_size=32, dropout=0.1),
        "train": {"max_steps": 120, "valid_every": 40, "batch_tokens": 800, "threads": 1,
                  "progress": False, "tensorboard": False, "device": "cpu", "lr": 0.005}})
    train(cfg)
    sd = torch.load(f"{out_dir}/{name}/best.pt", weights_only=True)["model"]
    h = hashlib.sha256(b"".join(sd[k].numpy().tobytes() for k in sorted(sd))).hexdigest()
    tr = load(f"{out_dir}/{name}/best.pt", device="cpu")
    result[name] = {"weights": h, "beam5": tr.translate(INPUTS, beam=5, nbest=2),
                    "greedy": tr.translate(INPUTS, beam=1),
                    "int8": tr.quantize("int8").translate(INPUTS, beam=5)}
json.dump(result, open(f"{out_dir}/result.json", "w"), indent=1)
print(json.dumps({k: v["weights"][:12] for k, v in result.items()}))
