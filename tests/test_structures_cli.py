"""The round trip of every structure through the command line and the Python API: `tandem
train` a tiny model on generated data, then `tandem predict` (classify, tag), `tandem
generate` (lm, generate) and `tandem evaluate`, and `tandem.load` returning the structure's
predictor; bad input to those commands exits 2 naming the file and line."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tandem
from structdata import (  # tests/structdata.py
    classify_lines,
    config_dict,
    feature_data,
    tag_blocks,
    tag_of,
    write,
)
from tandem.cli import main
from tandem.structures.classify import ClassifierPredictor
from tandem.structures.generate import GeneratorPredictor
from tandem.structures.lm import LMPredictor
from tandem.structures.tag import TaggerPredictor


@pytest.fixture
def models(structure_models):
    """{structure: best.pt} of conftest's session-wide tiny models."""
    return structure_models


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_load_gives_each_structure_its_predictor(models):
    kinds = {"classify": ClassifierPredictor, "tag": TaggerPredictor, "lm": LMPredictor,
             "generate": GeneratorPredictor}
    for s, path in models.items():
        assert isinstance(tandem.load(path), kinds[s]), s


def test_load_still_gives_a_translator_for_seq2seq(attention_checkpoint):
    from tandem.structures.translator import Translator

    tr = tandem.load(attention_checkpoint)
    assert isinstance(tr, Translator) and len(tr.translate(["abc"])) == 1


def test_load_refuses_an_ensemble_of_a_structure_model(models):
    with pytest.raises(tandem.CheckpointError, match="ensembles are for seq2seq"):
        tandem.load(models["classify"], models["classify"])


def test_predict_labels_with_probabilities(models, tmp_path, capsys):
    rng = random.Random(11)
    test = classify_lines(rng, 60)
    path = write(tmp_path / "test.tsv", test)  # text<TAB>label: predict reads the first column
    assert main(["predict", "--model", str(models["classify"]), "--input", path,
                 "--topk", "2"]) == 0
    rows = [line.split("\t") for line in _lines(capsys)]
    assert len(rows) == len(test)
    right = 0
    for row, item in zip(rows, test, strict=True):
        assert {row[0], row[2]} == {"yes", "no"}
        p1, p2 = float(row[1]), float(row[3])
        assert p1 >= p2 and abs(p1 + p2 - 1) < 1e-3
        right += row[0] == item.split("\t")[1]
    assert right / len(test) > 0.8, right
    # the Python API gives the same best labels
    api = tandem.load(models["classify"]).predict([t.split("\t")[0] for t in test])
    assert [top[0][0] for top in api] == [r[0] for r in rows]


def test_evaluate_a_classifier_reports_accuracy_f1_and_the_confusion_matrix(models, tmp_path,
                                                                             capsys):
    path = write(tmp_path / "test.tsv", classify_lines(random.Random(12), 80))
    assert main(["evaluate", "--model", str(models["classify"]), "--data", path,
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["structure"] == "classify" and res["items"] == 80
    assert res["labels"] == ["no", "yes"]
    assert sum(map(sum, res["confusion"])) == 80
    diag = sum(res["confusion"][i][i] for i in range(2))
    assert res["accuracy"] == pytest.approx(100 * diag / 80)
    # the scores of `tandem predict`'s labels against the gold ones, counted here
    assert main(["predict", "--model", str(models["classify"]), "--input", path]) == 0
    got = [row.split("\t")[0] for row in _lines(capsys)]
    gold = [x.split("\t")[1] for x in classify_lines(random.Random(12), 80)]
    pairs = list(zip(gold, got, strict=True))
    assert res["confusion"] == [[pairs.count((g, p)) for p in ("no", "yes")]
                                for g in ("no", "yes")]  # rows: gold, columns: predicted
    f1 = []
    for c in ("no", "yes"):  # F1 = 2PR / (P + R)
        tp = pairs.count((c, c))
        precision, recall = tp / got.count(c), tp / gold.count(c)
        f1.append(200 * precision * recall / (precision + recall))
    assert res["macro_f1"] == pytest.approx(sum(f1) / 2)
    assert main(["evaluate", "--model", str(models["classify"]), "--data", path]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "confusion matrix" in text


def test_predict_tags_every_word_including_unseen_ones(models, tmp_path, capsys):
    sentences = [" ".join(["qqa", "zzb", "xyc", "dda"][i % 4] for i in range(j, j + 5))
                 for j in range(4)]  # words never in training (q, z, x, y are not its letters)
    path = write(tmp_path / "in.txt", sentences)
    assert main(["predict", "--model", str(models["tag"]), "--input", path]) == 0
    rows = _lines(capsys)
    assert len(rows) == 4
    right = total = 0
    for row, sent in zip(rows, sentences, strict=True):
        pairs = [tok.rsplit("/", 1) for tok in row.split()]
        assert [w for w, _ in pairs] == sent.split()
        right += sum(t == tag_of(w) for w, t in pairs)
        total += len(pairs)
    assert right / total >= 0.75, rows
    assert main(["predict", "--model", str(models["tag"]), "--input", path,
                 "--tags-only"]) == 0
    assert [len(r.split()) for r in _lines(capsys)] == [5] * 4


def test_evaluate_a_tagger_reports_accuracy_on_unseen_words(models, tmp_path, capsys):
    blocks = tag_blocks(random.Random(14), 40)
    path = write(tmp_path / "test.tsv", blocks)
    assert main(["evaluate", "--model", str(models["tag"]), "--data", path, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["tokens"] == sum(1 for x in blocks if x)
    assert res["token_acc"] > 80
    # unseen = never written so in the model's training file (read here, not from the model)
    train_file = torch.load(models["tag"], weights_only=True)["config"]["data"]["train"]
    seen = {x.split("\t")[0] for x in Path(train_file).read_text(encoding="utf-8").splitlines()
            if x}
    unseen = [w for w in (x.split("\t")[0] for x in blocks if x) if w not in seen]
    assert 0 < len(unseen) < res["tokens"] and res["unseen_tokens"] == len(unseen)
    # unseen_acc's value is pinned with a fake tagger (test_structures_train.py's
    # test_evaluate_classifier_and_tagger_score_each_example_as_its_own): this tagger is
    # right on nearly every word, seen or not, so it could not tell a wrong mean here
    assert "unseen_acc" in res


def test_generate_from_a_language_model_is_seeded(models, capsys):
    args = ["generate", "--model", str(models["lm"]), "--prompt", "the cat", "--max-len", "40",
            "--seed", "5", "--n", "2"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("the cat") and first.count("the cat") >= 2
    assert main([*args[:-3], "6", "--n", "2"]) == 0  # another seed, other samples
    assert capsys.readouterr().out != first
    # greedy continues with the training text's words
    assert main(["generate", "--model", str(models["lm"]), "--prompt", "the", "--greedy",
                 "--max-len", "30"]) == 0
    words = set(capsys.readouterr().out.replace(".", " ").split())
    assert words <= {"the", "cat", "a", "dog", "sat", "on", "mat", "and", "ran"}, words


def test_evaluate_a_language_model(models, tmp_path, capsys):
    from structdata import lm_text

    path = write(tmp_path / "test.txt", lm_text(random.Random(15), 40))
    assert main(["evaluate", "--model", str(models["lm"]), "--data", path, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ppl"] < 6 and res["bpc"] == pytest.approx(res["loss"] / np.log(2), rel=1e-4)
    score = tandem.load(models["lm"]).score("the cat sat on the mat.")
    assert 0 < score["loss"] < np.log(6)


def test_generate_from_labels(models, capsys):
    assert main(["generate", "--model", str(models["generate"]), "--label", "A", "--label", "B",
                 "--n", "10", "--seed", "1", "--temperature", "0.5"]) == 0
    rows = [line.split("\t") for line in _lines(capsys)]
    assert [r[0] for r in rows] == ["A"] * 10 + ["B"] * 10
    share_a = np.mean([set(r[1]) <= set("abc") for r in rows[:10]])
    share_b = np.mean([set(r[1]) <= set("xyz") for r in rows[10:]])
    assert share_a >= 0.8 and share_b >= 0.8, rows
    # the API's searches: beam 1 is greedy; a wider beam writes in the label's letters too
    gen = tandem.load(models["generate"])
    assert gen.generate(["A", "B"], sample=False) == gen.generate(["A", "B"], beam=1,
                                                                  sample=False)
    a, b = gen.generate(["A", "B"], beam=4)
    assert set(a) <= set("abc") and set(b) <= set("xyz"), (a, b)


def test_the_wrong_command_for_a_structure_exits_2(models, capsys):
    assert main(["predict", "--model", str(models["lm"])]) == 2
    assert "tandem generate" in capsys.readouterr().err
    assert main(["generate", "--model", str(models["classify"])]) == 2
    assert "predict" in capsys.readouterr().err
    assert main(["generate", "--model", str(models["generate"]), "--label", "C"]) == 2
    assert "'C'" in capsys.readouterr().err


# --- bad input: exit 2, the file and line named ------------------------------------------------


def test_an_unknown_label_at_evaluation(models, tmp_path, capsys):
    path = write(tmp_path / "test.tsv", ["abc\tyes", "abd\tmaybe", "xab\tno"])
    assert main(["evaluate", "--model", str(models["classify"]), "--data", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2" in err and "'maybe'" in err


def test_malformed_conllu(models, tmp_path, capsys):
    good = "1\tab\t_\tA\t_\t_\t0\troot\t_\t_\n2\tcd\t_\tO\t_\t_\t1\tdep\t_\t_\n"
    bad = "1\tab\t_\tA\n"  # 4 columns, not 10
    path = tmp_path / "test.conllu.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(good + "\n" + bad + "\n")
    assert main(["evaluate", "--model", str(models["tag"]), "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4" in err


def test_a_feature_matrix_with_the_wrong_row_count(tmp_path, capsys):
    raw = config_dict("generate", tmp_path / "run", max_steps=5)
    raw["data"] = feature_data(tmp_path / "data", 40, 20, dev_rows=15)  # 15 rows, 20 lines
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "dev.npy has 15 rows" in err and "dev.txt has 20 lines" in err
