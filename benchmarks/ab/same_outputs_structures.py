"""Train each structure's recipe for a few steps with the tandem on PYTHONPATH and write the
sha256 of every weight tensor, the test-split metrics and predictions on a few inputs to
OUT/result.json, to show that two source trees train and predict identically:

    PYTHONPATH=/work/before/src .venv/bin/python benchmarks/ab/same_outputs_structures.py /tmp/a
    PYTHONPATH=src .venv/bin/python benchmarks/ab/same_outputs_structures.py /tmp/b
    cmp /tmp/a/result.json /tmp/b/result.json

Only public API is used (tandem.load and each loaded model's predict / tag / generate /
evaluate), so both trees run the same script. Needs ../shared/data (names, sst2, ud_english_ewt,
tinyshakespeare).
"""
import hashlib
import json
import sys

import torch

import tandem
from tandem.config import load_config
from tandem.train.trainer import train

out_dir, result = sys.argv[1], {}
STEPS = ["train.max_minutes=null", "train.lr_horizon=steps", "train.max_steps=40",
         "train.valid_every=20", "train.threads=1", "train.progress=false",
         "train.tensorboard=false", "train.device=cpu"]
CASES = {
    "classify-names": "configs/names_classify.yaml",
    "classify-sst2": "configs/sst2.yaml",
    "tag-ud_ewt": "configs/ud_ewt_upos.yaml",
    "lm-tinyshakespeare": "configs/tinyshakespeare.yaml",
    "generate-names": "configs/names_generate.yaml",
}
SMALL = {"classify-sst2": ["model.hidden_size=64", "model.emb_size=32"],
         "tag-ud_ewt": ["model.hidden_size=64", "model.emb_size=32", "model.enc_layers=1"],
         "lm-tinyshakespeare": ["model.hidden_size=128"]}
TEXTS = ["Nakamura", "O'Brien", "a gorgeous , witty film", "The cat sat on the mat ."]
for name, path in CASES.items():
    run = f"{out_dir}/{name}"
    cfg = load_config(path, [*STEPS, *SMALL.get(name, []), f"run_dir={run}"])
    train(cfg)
    sd = torch.load(f"{run}/last.pt", weights_only=False)["model"]
    weights = {k: hashlib.sha256(sd[k].float().numpy().tobytes()).hexdigest()[:16]
               for k in sorted(sd)}
    m = tandem.load(f"{run}/best.pt", device="cpu")
    ev = {k: v for k, v in m.evaluate().items() if isinstance(v, (int, float, str))}
    r = {"weights": weights, "evaluate": ev}
    if name.startswith("classify"):
        r["predict"] = m.predict(TEXTS, topk=2)
    elif name.startswith("tag"):
        r["tag"] = m.tag(TEXTS)
    elif name.startswith("lm"):
        r["sample"] = m.generate(["ROMEO:", ""], n=2, max_len=40, seed=3)
        r["beam"] = m.generate(["ROMEO:"], max_len=20, beam=3)
        r["score"] = m.score("To be, or not to be")
    else:
        r["sample"] = m.generate(labels=["Russian", "Irish"], n=2, seed=3)
        r["greedy"] = m.generate(labels=["Russian"], sample=False)
    result[name] = r
json.dump(result, open(f"{out_dir}/result.json", "w"), indent=1, sort_keys=True)
print(json.dumps({k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:12]
                  for k, v in result.items()}))
