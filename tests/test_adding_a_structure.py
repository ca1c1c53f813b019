"""A structure is one module: `vowels` (tests/toy_structure.py), defined in the test tree with
no file under src/ edited, is trained by `tandem train`, scored by `tandem evaluate`, used by
`tandem predict` and `tandem.load`, and served with the server's batching, like the five
built-in structures."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest
import yaml

import tandem
import toy_structure  # noqa: F401 - registers the structure
from tandem.serve import ServeOptions, create_app

pytestmark = pytest.mark.slow


def words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("abcdeghiklmnoprstu") for _ in range(rng.randint(2, 7)))
            for _ in range(n)]


@pytest.fixture(scope="module")
def vowels_run(tmp_path_factory) -> Path:
    """A vowels model trained by `tandem train` on 600 generated words."""
    from tandem.cli import main

    root = tmp_path_factory.mktemp("vowels")
    rng = random.Random(0)
    for split, n in (("train", 600), ("dev", 80), ("test", 80)):
        (root / f"{split}.txt").write_text("\n".join(words(rng, n)) + "\n")
    cfg = {"run_dir": str(root / "run"),
           "data": {"train": str(root / "train.txt"), "dev": str(root / "dev.txt"),
                    "test": str(root / "test.txt")},
           "model": {"structure": "vowels", "cell": "gru", "emb_size": 16, "hidden_size": 32,
                     "dropout": 0.0},
           "train": {"max_steps": 150, "valid_every": 50, "batch_tokens": 400, "lr": 0.01,
                     "progress": False, "tensorboard": False, "device": "cpu", "threads": 1}}
    (root / "vowels.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root / "vowels.yaml")]) == 0
    return root


def test_the_config_takes_the_new_structure_and_its_metrics():
    cfg = tandem.config.from_dict({"data": {"train": "x.txt"},
                                   "model": {"structure": "vowels"}})
    assert cfg.train.valid_metric == "accuracy" and cfg.model.bidirectional is True
    assert cfg.model.conditioning is None  # a key that does not apply stays unset
    with pytest.raises(tandem.ConfigError, match=r"^train\.valid_metric = 'bleu'"):
        tandem.config.from_dict({"data": {"train": "x.txt"}, "model": {"structure": "vowels"},
                                 "train": {"valid_metric": "bleu"}})


def test_it_trains_and_validates(vowels_run):
    valid = [json.loads(x) for x in (vowels_run / "run" / "valid.jsonl").read_text().splitlines()]
    assert [v["step"] for v in valid] == [50, 100, 150]
    assert valid[-1]["accuracy"] > 95.0  # a vowel is a letter: the rule is easy to learn
    assert valid[-1]["loss"] < valid[0]["loss"]


def test_it_loads_predicts_and_evaluates(vowels_run, cli):
    model = tandem.load(vowels_run / "run" / "best.pt", device="cpu")
    assert type(model).__name__ == "VowelModel" and model.structure == "vowels"
    assert model.tag(["banana", "strike"]) == ["cvcvcv", "cccvcv"]
    res = cli(vowels_run, "evaluate", "--model", "run/best.pt")
    assert res.returncode == 0, res.stderr
    assert "accuracy" in res.stdout and "test.txt" in res.stdout
    assert model.evaluate()["accuracy"] > 95.0
    out = cli(vowels_run, "predict", "--model", "run/best.pt", stdin="mango\nokapi\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["m/c a/v n/c g/c o/v", "o/v k/c a/v p/c i/v"]
    bad = cli(vowels_run, "predict", "--model", "run/best.pt", stdin="two words\n")
    assert bad.returncode == 2 and "<stdin>:1: more than one word" in bad.stderr
    wrong = cli(vowels_run, "translate", "--model", "run/best.pt", stdin="abc\n")
    assert wrong.returncode == 2 and "does not translate" in wrong.stderr


def test_it_is_served_with_batching(vowels_run):
    model = tandem.load(vowels_run / "run" / "best.pt", device="cpu")
    app = create_app(model, ServeOptions(max_wait_ms=10_000, max_batch=6))

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            bodies = [{"inputs": ["kiwi", "plum"]}, {"inputs": ["fig"], "upper": True},
                      {"inputs": ["pear", "lime", "date"]}]
            answers = await asyncio.gather(*(c.post("/v1/predict", json=b) for b in bodies))
            schema = (await c.get("/openapi.json")).json()
            refused = await c.post("/v1/predict", json={"inputs": ["a"], "colour": 1})
            info = (await c.get("/v1/model")).json()
            return answers, schema, refused, info

    answers, schema, refused, info = asyncio.run(scenario())
    assert [a.json()["tags"] for a in answers] == [["cvcv", "ccvc"], ["CVC"],
                                                   ["cvvc", "cvcv", "cvcv"]]
    assert model.runs == [6]  # three requests, one forward pass (max_batch 6 fills it)
    assert "VowelRequest" in json.dumps(schema)
    assert refused.status_code == 422 and "colour" in refused.text
    assert info["structure"] == "vowels"
