"""bfloat16 training and int8 decoding on tiny models: they run, learn, and keep the API."""

import random
import string

import pytest
import torch

from tandem.config import from_dict
from tandem.structures.translator import Translator
from tandem.train.trainer import Trainer, train


def _cfg(tmp_path, **train):
    return from_dict({
        "name": "tiny", "run_dir": str(tmp_path / "run"),
        "data": {"task": "copy", "task_sizes": [400, 20, 20], "task_max_len": 6},
        "model": {"cell": "lstm", "emb_size": 16, "hidden_size": 32, "dropout": 0.0},
        "train": {"max_steps": 40, "valid_every": 40, "batch_tokens": 400, "lr": 0.01,
                  "progress": False, "threads": 1, "keep_last": 0, **train},
    })


def test_bf16_training_runs_in_bf16_and_learns(tmp_path):
    trainer = Trainer.from_config(_cfg(tmp_path, bf16=True))
    dtypes = []
    trainer.model.decoder.generator.register_forward_hook(
        lambda mod, inp, out: dtypes.append(out.dtype))
    batches = trainer.batches()
    batch = next(batches)
    first, _ = trainer.train_step(batch)
    for _ in range(40):
        trainer.train_step(batch)
    last, _ = trainer.train_step(batch)
    assert set(dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights
    assert last < first * 0.7
    # the same seed, weights and first batch in float32: bf16 rounds, the loss is the same
    ref = Trainer.from_config(_cfg(tmp_path / "fp32"))
    ref_batch = next(ref.batches())
    assert torch.equal(ref_batch.src, batch.src)
    ref_first, _ = ref.train_step(ref_batch)
    assert first != ref_first and abs(first - ref_first) < 1e-3 * ref_first, (first, ref_first)


def test_training_reports_time_waiting_for_batches(tmp_path):
    run = train(_cfg(tmp_path))
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "time waiting for batches" in log
    import json
    entry = json.loads((run / "valid.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= entry["data_wait_s"] < entry["elapsed_s"]


def test_quantized_translator_translates_every_option(attention_checkpoint):
    """int8 decoding against the float model it came from (conftest's trained `reverse`
    model): greedy, beam with n-best and attention find the same outputs on (nearly) every
    input with scores that moved a little but did move (the weights really are int8), and
    quantizing twice is quantizing once."""
    rng = random.Random(0)
    inputs = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 6)))
              for _ in range(40)] + [""]
    float_tr = Translator.from_checkpoint(attention_checkpoint)
    tr = Translator.from_checkpoint(attention_checkpoint).quantize("int8")
    twice = Translator.from_checkpoint(attention_checkpoint).quantize("int8").quantize("int8")
    for beam, nbest in ((1, 1), (3, 2)):
        want = float_tr.translate_full(inputs, beam=beam, nbest=nbest)
        got = tr.translate_full(inputs, beam=beam, nbest=nbest)
        assert [len(r) for r in got] == [nbest] * len(inputs)
        assert got[-1][0].text == "" and got[-1][0].score == 0.0  # nothing to translate
        for r in got[:-1]:  # n-best: distinct outputs, best first (length-normalised)
            assert len({h.text for h in r}) == nbest
            assert [h.norm_score for h in r] == sorted((h.norm_score for h in r), reverse=True)
        same = [(w[0].score, g[0].score) for w, g in zip(want, got, strict=True)
                if w[0].text == g[0].text]
        assert len(same) >= 0.9 * len(inputs), beam  # observed: all but at most one
        moved = [abs(a - b) for a, b in same]
        assert sum(moved) / len(moved) < 0.1 and max(moved) > 1e-4, moved
        assert [[h.text for h in r] for r in twice.translate_full(inputs, beam=beam,
                                                                   nbest=nbest)] == \
            [[h.text for h in r] for r in got]
    want = float_tr.translate_full(inputs[:10], beam=2, attention=True)
    got = tr.translate_full(inputs[:10], beam=2, attention=True)
    for w, g in zip(want, got, strict=True):
        if w[0].text == g[0].text:  # one row per output token and the end, one column a source
            att = torch.tensor(g[0].attention)
            assert att.shape == (len(g[0].tokens) + 1, len(g[0].src_tokens))
            torch.testing.assert_close(att.sum(1), torch.ones(len(att)))
            torch.testing.assert_close(att, torch.tensor(w[0].attention), atol=0.05, rtol=0)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_streaming_100k_lines_keeps_memory_flat(tmp_path):
    """Decoding memory does not grow with the number of sentences translated."""
    import itertools
    import random

    run = train(_cfg(tmp_path, max_steps=2, valid_every=2))
    tr = Translator.from_checkpoint(run / "best.pt")
    rng = random.Random(0)
    lines = ("".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 8)))
             for _ in range(100_000))
    outputs = tr.stream(lines, chunk=2000, beam=1, max_len_a=0.0, max_len_b=2,
                        batch_size=500)
    n = sum(1 for _ in itertools.islice(outputs, 20_000))
    after_warmup = _rss_mb()
    n += sum(1 for _ in outputs)
    grown = _rss_mb() - after_warmup
    assert n == 100_000
    assert grown < 0.1 * after_warmup, (after_warmup, grown)


def test_int8_model_is_a_close_copy_and_leaves_the_float_model_alone():
    from tandem.config import ModelConfig
    from tandem.model.fast import quantize_int8
    from tandem.model.seq2seq import Seq2Seq

    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(emb_size=32, hidden_size=64, dec_layers=2, dropout=0.0),
                    30, 30).eval()
    q = quantize_int8(model)
    assert "step_cells" not in dict(model.decoder.named_children())  # original untouched
    assert type(model.decoder.rnn) is torch.nn.LSTM
    assert "quantized" in type(q.decoder.step_cells[0].both).__module__  # int8 step products
    # narrow outputs (the 30-word vocabulary, the 64-wide attentional layer) stay float
    assert type(q.decoder.generator) is torch.nn.Linear
    assert type(q.decoder.pre_output) is torch.nn.Linear
    src = torch.randint(4, 30, (4, 7))
    lens = torch.tensor([7, 6, 3, 1])
    prev = torch.full((4,), 2)
    with torch.no_grad():
        want, _, _ = model.decode_step(prev, model.init_state(model.encode(src, lens)))
        got, _, _ = q.decode_step(prev, q.init_state(q.encode(src, lens)))
    real = torch.isfinite(want)
    diff = (got[real].exp() - want[real].exp()).abs().max()
    assert diff < 0.02, diff  # int8 weights: probabilities move a little, not a lot
