"""Checkpoint averaging and ensemble decoding."""

import pytest
import torch

from conftest import padded_batch, tiny_model
from tandem import checkpoint
from tandem.config import Config, DataConfig, DecodeConfig
from tandem.data.dataset import build_fields
from tandem.data.fields import Fields
from tandem.data.vocab import BOS_ID, EOS_ID
from tandem.decode import search
from tandem.decode.ensemble import Ensemble
from tandem.structures.translator import Translator, load
from tandem.train.average import average


def _fields() -> Fields:
    pairs = [("abc", "cba"), ("hello", "olleh"), ("xyz", "zyx")]
    return build_fields(DataConfig(task="reverse"), pairs)


def _save(model, fields, path, cfg):
    return checkpoint.save({"model": model.state_dict(), "config": cfg.to_dict(),
                            "fields": fields.state(), "train_state": {}}, path)


def _cfg(**model) -> Config:
    cfg = Config(data=DataConfig(task="reverse"))
    for k, v in {"emb_size": 8, "hidden_size": 16, "dropout": 0.0, **model}.items():
        setattr(cfg.model, k, v)
    return cfg


def test_ensemble_of_one_equals_the_model():
    model = tiny_model().eval()
    src, lens = padded_batch([5, 3, 4])
    opts = DecodeConfig(beam=3, nbest=2)
    alone = search.beam_search(model, src, lens, opts)
    ens = search.beam_search(Ensemble([model]), src, lens, opts)
    for a, b in zip(alone, ens, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [round(h.score, 4) for h in a] == [round(h.score, 4) for h in b]


def test_ensemble_averages_log_probabilities():
    m1, m2 = tiny_model().eval(), tiny_model().eval()
    src, lens = padded_batch([4, 2])
    ens = Ensemble([m1, m2])
    prev = torch.full((2,), 2)
    lp, _, att = ens.decode_step(prev, ens.init_state(ens.encode(src, lens)))
    lp1, _, a1 = m1.decode_step(prev, m1.init_state(m1.encode(src, lens)))
    lp2, _, a2 = m2.decode_step(prev, m2.init_state(m2.encode(src, lens)))
    mean = (lp1 + lp2) / 2
    expected = mean - torch.logsumexp(mean, -1, keepdim=True)
    torch.testing.assert_close(lp, expected)
    torch.testing.assert_close(torch.logsumexp(lp, -1), torch.zeros(2))
    torch.testing.assert_close(att, (a1 + a2) / 2)


def test_average_of_identical_checkpoints_is_the_checkpoint(tmp_path):
    fields, cfg = _fields(), _cfg()
    model = tiny_model(len(fields.src_vocab), len(fields.tgt_vocab))
    p = _save(model, fields, tmp_path / "a.pt", cfg)
    out = average([p, p, p], tmp_path / "avg.pt")
    avg = checkpoint.load(out)["model"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(avg[k], v)


def test_average_is_the_mean_and_translates(tmp_path):
    fields, cfg = _fields(), _cfg()
    m1 = tiny_model(len(fields.src_vocab), len(fields.tgt_vocab))
    m2 = tiny_model(len(fields.src_vocab), len(fields.tgt_vocab))
    out = average([_save(m1, fields, tmp_path / "1.pt", cfg),
                   _save(m2, fields, tmp_path / "2.pt", cfg)], tmp_path / "avg.pt")
    avg = checkpoint.load(out)["model"]
    mean = {k: (v + m2.state_dict()[k]) / 2 for k, v in m1.state_dict().items()}
    assert avg.keys() == mean.keys()
    for k, v in mean.items():
        torch.testing.assert_close(avg[k], v)
    # it translates as a model given the mean weights here does
    hand = tiny_model(len(fields.src_vocab), len(fields.tgt_vocab))
    hand.load_state_dict(mean)
    want = load(_save(hand, fields, tmp_path / "hand.pt", cfg)).translate_full(
        ["abc", "hello"], beam=2)
    got = load(out).translate_full(["abc", "hello"], beam=2)
    assert [r[0].tokens for r in got] == [r[0].tokens for r in want]
    assert [r[0].score for r in got] == pytest.approx([r[0].score for r in want], abs=1e-4)


@torch.no_grad()
def _mean_log_prob(models, src_ids: list[int], tgt_ids: list[int]) -> float:
    """log P(tgt_ids | src_ids) under the ensemble's definition, stepped here by hand: at
    each step the mean of the models' log-probabilities, renormalised over the vocabulary."""
    src, lens = torch.tensor([src_ids]), torch.tensor([len(src_ids)])
    states = [m.init_state(m.encode(src, lens)) for m in models]
    prev, total = torch.tensor([BOS_ID]), 0.0
    for tok in tgt_ids:
        steps = [m.decode_step(prev, s) for m, s in zip(models, states, strict=True)]
        states = [s for _, s, _ in steps]
        mean = torch.stack([lp[0] for lp, _, _ in steps]).mean(0)
        total += float(mean[tok] - torch.logsumexp(mean, -1))
        prev = torch.tensor([tok])
    return total


def test_ensemble_translator_loads_several_checkpoints(tmp_path):
    """load(a, b) decodes with the two models' mean log-probabilities: each n-best output's
    score is its log-probability under that mean, computed by hand from the two models
    loaded alone; and the ensemble of a model with itself is that model."""
    fields, cfg = _fields(), _cfg()
    paths = [_save(tiny_model(len(fields.src_vocab), len(fields.tgt_vocab)), fields,
                   tmp_path / f"{i}.pt", cfg) for i in range(2)]
    tr = load(*paths)
    assert isinstance(tr, Translator) and isinstance(tr.model, Ensemble)
    texts = ["abc", "xyz"]
    out = tr.translate_full(texts, beam=3, nbest=2)
    members = [load(p).model for p in paths]
    opts = DecodeConfig()
    for text, nbest in zip(texts, out, strict=True):
        assert len(nbest) == 2 and nbest[0].tokens != nbest[1].tokens
        src_ids = fields.src_ids(fields.src_tok.tokenize(text))
        limit = int(opts.max_len_a * len(src_ids) + opts.max_len_b)
        for r in nbest:
            tgt_ids = [fields.tgt_vocab.stoi[t] for t in r.tokens]
            if len(tgt_ids) < limit:  # it ended: the end of sentence is scored too
                tgt_ids.append(EOS_ID)
            assert r.score == pytest.approx(_mean_log_prob(members, src_ids, tgt_ids),
                                            abs=1e-4)
    alone = load(paths[0]).translate_full(texts, beam=3, nbest=2)
    twin = load(paths[0], paths[0]).translate_full(texts, beam=3, nbest=2)
    assert [[h.tokens for h in r] for r in twin] == [[h.tokens for h in r] for r in alone]
    assert [[pytest.approx(h.score, abs=1e-4) for h in r] for r in twin] == \
        [[h.score for h in r] for r in alone]
    assert [[h.tokens for h in r] for r in out] != [[h.tokens for h in r] for r in alone]


def test_ensemble_and_average_refuse_models_with_other_vocabularies(tmp_path):
    import pytest

    from tandem.errors import CheckpointError

    f1, cfg = _fields(), _cfg()
    f2 = build_fields(DataConfig(task="reverse"), [("qrs", "srq")])
    p1 = _save(tiny_model(len(f1.src_vocab), len(f1.tgt_vocab)), f1, tmp_path / "1.pt", cfg)
    p2 = _save(tiny_model(len(f2.src_vocab), len(f2.tgt_vocab)), f2, tmp_path / "2.pt", cfg)
    with pytest.raises(CheckpointError, match="2.pt"):
        load(p1, p2)
    with pytest.raises(CheckpointError, match="2.pt"):
        average([p1, p2], tmp_path / "avg.pt")
