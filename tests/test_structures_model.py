"""The models of the structures beyond seq2seq (tandem.model.{classifier,tagger,lm,generator},
built by each structure's `build`): padding invariance, learning, the language model's and the
generator's search interface (teacher-forced log-probs == summed decode steps, beam 1 ==
greedy, seeded sampling), and the fast kernels' outputs == the textbook's, on tiny models and
generated ids."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from tandem.config import DecodeConfig, ModelConfig
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID
from tandem.decode import search
from tandem.errors import ConfigError
from tandem.model import fast
from tandem.model.classifier import Classifier
from tandem.model.decoder import Decoder, plain_rnn
from tandem.model.encoder import Encoder, packed_rnn
from tandem.model.generator import ConditionalGenerator
from tandem.model.lm import LanguageModel, LMState
from tandem.model.seq2seq import Seq2Seq
from tandem.model.tagger import Tagger
from tandem.structures import get

CELLS = ["rnn", "gru", "lstm"]


def _product(*lists) -> list[tuple]:
    """Every combination, as a list (what parametrize wants)."""
    return list(itertools.product(*lists))
V, LABELS, CHARS, FEATS = 20, 5, 12, 6


def cfg(structure: str, cell: str = "lstm", **kw) -> ModelConfig:
    """A tiny model config of `structure` (no dropout unless asked)."""
    opts = dict(structure=structure, cell=cell, emb_size=8, hidden_size=16, dropout=0.0)
    if structure == "tag":
        opts.update(char_emb_size=6, char_hidden_size=8)
    opts.update(kw)
    return ModelConfig(**opts)


def model_of(structure: str, cell: str = "lstm", features: bool = False, **kw):
    """The model `structure`'s module builds for fields of these sizes."""
    fields = SimpleNamespace(vocab=[0] * V, labels=[0] * LABELS, chars=[0] * CHARS,
                             src_vocab=[0] * V, tgt_vocab=[0] * V,
                             num_features=FEATS if features else 0, frame_width=0)
    return get(structure).build(SimpleNamespace(model=cfg(structure, cell, **kw)), fields)


def ids(lengths: list[int], vocab: int = V, width: int | None = None) -> torch.Tensor:
    """Random ids >= 4 (no specials) (B, width) with trailing PAD_ID."""
    out = torch.full((len(lengths), width or max(lengths, default=0)), PAD_ID)
    for i, n in enumerate(lengths):
        out[i, :n] = torch.randint(4, vocab, (n,))
    return out


def tag_batch(lengths: list[int]):
    """Word ids (B, S), lengths, char ids (B, S, W) of 1..4 characters per real word."""
    words = ids(lengths)
    chars = torch.zeros(len(lengths), words.size(1), 4, dtype=torch.long)
    for b, n in enumerate(lengths):
        for j in range(n):
            k = int(torch.randint(1, 5, ()))
            chars[b, j, :k] = torch.randint(4, CHARS, (k,))
    return words, torch.tensor(lengths), chars


def cond_batch(model: ConditionalGenerator, B: int) -> torch.Tensor:
    if model.features:
        return torch.randn(B, FEATS)
    return torch.randint(0, LABELS, (B, 1))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and then not slower when other work shares the
    machine; the thread count is restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- building -------------------------------------------------------------------------------


def test_build_model_picks_the_class_of_each_structure():
    kinds = {"seq2seq": Seq2Seq, "classify": Classifier, "tag": Tagger, "lm": LanguageModel,
             "generate": ConditionalGenerator}
    for structure, cls in kinds.items():
        assert type(model_of(structure)) is cls
    assert model_of("generate").features is False
    assert model_of("generate", features=True).features is True
    assert model_of("generate", num_features=FEATS, features=True).features is True
    with pytest.raises(ConfigError, match=r"^model\.num_features = 4 is not allowed: .* 6"):
        model_of("generate", num_features=4, features=True)


def test_structure_defaults_fill_only_the_keys_that_apply():
    """ModelConfig gives each structure its defaults; keys that do not apply stay null."""
    assert ModelConfig().conditioning == "attention" and ModelConfig().bidirectional is True
    c = ModelConfig(structure="lm")
    assert c.bidirectional is None and c.conditioning is None and c.enc_layers is None
    assert c.dec_layers == 1 and c.char_emb_size is None
    c = ModelConfig(structure="tag")
    assert c.bidirectional is True and (c.char_emb_size, c.char_hidden_size) == (32, 64)
    assert c.conditioning is None and c.dec_layers is None
    c = ModelConfig(structure="classify")
    assert c.bridge == "linear" and c.conditioning is None and c.attention is None
    assert ModelConfig(structure="generate").conditioning == "init"
    assert ModelConfig(structure="generate", conditioning="every_step").conditioning == \
        "every_step"


@pytest.mark.parametrize("structure", ["classify", "tag", "lm", "generate"])
def test_every_parameter_is_trained(structure):
    """No part is built that the loss never reaches (e.g. an LSTM cell-state bridge for a
    classifier)."""
    torch.manual_seed(1)
    model = model_of(structure, "lstm", bridge="pooled" if structure == "classify" else None)
    loss = _loss(model, structure, _batch(model, structure))
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not unused


# --- one batch and its loss for each structure ----------------------------------------------


def _batch(model, structure: str, B: int = 4):
    torch.manual_seed(2)
    if structure == "classify":
        return ids([5, 3, 6, 2][:B]), torch.tensor([5, 3, 6, 2][:B]), \
            torch.randint(0, LABELS, (B,))
    if structure == "tag":
        words, lens, chars = tag_batch([5, 3, 6, 2][:B])
        tags = torch.randint(0, LABELS, words.shape).masked_fill(words == PAD_ID, -100)
        return words, lens, chars, tags
    if structure == "lm":
        return ids([9] * B),
    tgt = ids([5, 3, 6, 2][:B], width=7)
    for b, n in enumerate([5, 3, 6, 2][:B]):
        tgt[b, n] = EOS_ID
    tgt = torch.cat([torch.full((B, 1), BOS_ID), tgt], 1)
    return cond_batch(model, B), tgt


def _loss(model, structure: str, batch) -> torch.Tensor:
    if structure == "classify":
        src, lens, labels = batch
        return F.cross_entropy(model(src, lens), labels)
    if structure == "tag":
        words, lens, chars, tags = batch
        return F.cross_entropy(model(words, lens, chars).reshape(-1, LABELS), tags.reshape(-1),
                               ignore_index=-100)
    if structure == "lm":
        (tokens,) = batch
        logits, _ = model(tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1))
    cond, tgt = batch
    logits = model(cond, tgt[:, :-1])
    return F.cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1), ignore_index=PAD_ID)


STRUCTURE_CELLS = _product(["classify", "tag", "lm", "generate"], CELLS)


@pytest.mark.parametrize(("structure", "cell"), STRUCTURE_CELLS)
def test_loss_falls(structure, cell):
    torch.manual_seed(3)
    model = model_of(structure, cell, features=structure == "generate" and cell == "gru")
    batch = _batch(model, structure)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    first = float(_loss(model, structure, batch).detach())
    for _ in range(25):
        opt.zero_grad()
        loss = _loss(model, structure, batch)
        loss.backward()
        opt.step()
    assert float(_loss(model, structure, batch).detach()) < 0.5 * first


# --- padding invariance ---------------------------------------------------------------------


@pytest.mark.parametrize(("bridge", "cell"), _product(["last", "linear", "pooled", "max"],
                                                               CELLS))
def test_classifier_padding_invariance(bridge, cell):
    model = model_of("classify", cell, bridge=bridge, enc_layers=2).eval()
    lens = [5, 2, 7]
    src = ids(lens, width=9)
    with torch.no_grad():
        batch = model(src, torch.tensor(lens))
        for b, n in enumerate(lens):
            alone = model(src[b:b + 1, :n], torch.tensor([n]))
            torch.testing.assert_close(batch[b:b + 1], alone, atol=1e-6, rtol=1e-5)
    assert batch.shape == (3, LABELS)


@pytest.mark.pins("model.enc_hidden_size")
def test_classifier_c_is_the_bridges():
    """c is the encoder's top final state for `last` (size He = model.enc_hidden_size), a
    transform to model.hidden_size for the others. He (10) differs from hidden_size (16), so
    each size below follows from one option only."""
    src, lens = ids([4, 3]), torch.tensor([4, 3])
    model = model_of("classify", "gru", bridge="last", enc_layers=2, enc_hidden_size=10).eval()
    with torch.no_grad():
        c = model.semantic_vector(src, lens)
        enc = model.encoder(src, lens)
    assert enc.states.shape == (2, 4, 10) and enc.final_h.shape == (2, 2, 10)
    torch.testing.assert_close(c, enc.final_h[-1])
    assert c.shape == (2, 10) and model.out.in_features == 10
    model = model_of("classify", "gru", bridge="linear", enc_layers=2, enc_hidden_size=10).eval()
    with torch.no_grad():
        c = model.semantic_vector(src, lens)
        enc = model.encoder(src, lens)
    assert enc.final_h.shape == (2, 2, 10) and c.shape == (2, 16)
    assert model.out.in_features == 16


@pytest.mark.pins("model.enc_hidden_size")
@pytest.mark.parametrize("structure", ["seq2seq", "tag"])
def test_enc_hidden_size_is_the_encoders_output_size(structure):
    """The other structures with an encoder: its states are model.enc_hidden_size wide (10),
    what reads them is built for that width, and the decoder (seq2seq) keeps hidden_size (16)."""
    model = model_of(structure, "lstm", enc_hidden_size=10).eval()
    src, lens = ids([4, 3]), torch.tensor([4, 3])
    with torch.no_grad():
        if structure == "tag":
            words, lens, chars = tag_batch([4, 3])
            assert model(words, lens, chars).shape == (2, 4, LABELS)
            assert model.out.in_features == 10
            return
        enc = model.encode(src, lens)
        state = model.init_state(enc)
        logp, state, _ = model.decode_step(torch.full((2,), BOS_ID), state)
    assert enc.states.shape == (2, 4, 10) and enc.final_h.shape[-1] == 10
    assert state.values.shape == (2, 4, 10)  # attention reads the encoder's states
    assert state.hidden[0].shape[-1] == 16 and logp.shape == (2, V)  # LSTM: (h, c)


@pytest.mark.parametrize(("cell", "char_view"), _product(CELLS, [True, False]))
def test_tagger_padding_invariance(cell, char_view):
    kw = {} if char_view else {"char_hidden_size": 0}
    model = model_of("tag", cell, **kw).eval()
    lens = [5, 2, 7]
    words, lengths, chars = tag_batch(lens)
    words = torch.cat([words, torch.zeros(3, 2, dtype=torch.long)], 1)  # extra padding
    chars = torch.cat([chars, torch.zeros(3, 2, 4, dtype=torch.long)], 1)
    with torch.no_grad():
        batch = model(words, lengths, chars)
        assert batch.shape == (3, 9, LABELS)
        for b, n in enumerate(lens):
            width = int((chars[b, :n] != PAD_ID).sum(-1).max())
            alone = model(words[b:b + 1, :n], torch.tensor([n]), chars[b:b + 1, :n, :width])
            torch.testing.assert_close(batch[b:b + 1, :n], alone, atol=1e-6, rtol=1e-5)
    assert (model.chars is not None) == char_view


def test_tagger_reads_the_characters():
    """Two words with one word id but different spellings get different tags' logits."""
    model = model_of("tag", "gru").eval()
    words = torch.tensor([[5, 5]])
    chars = torch.tensor([[[4, 5, 0], [6, 7, 8]]])
    with torch.no_grad():
        out = model(words, torch.tensor([2]), chars)
        no_chars = model_of("tag", "gru", char_emb_size=0).eval()
        plain = no_chars(words, torch.tensor([2]))
    assert not torch.allclose(out[0, 0], out[0, 1], atol=1e-4)
    assert plain.shape == out.shape
    with pytest.raises(ValueError, match="chars"):
        model(words, torch.tensor([2]))


@pytest.mark.parametrize("cell", CELLS)
def test_lm_padding_invariance_and_carried_state(cell):
    model = model_of("lm", cell, dec_layers=2).eval()
    lens = [6, 3, 8]
    tokens = ids(lens)
    with torch.no_grad():
        batch, _ = model(tokens)
        for b, n in enumerate(lens):
            alone, _ = model(tokens[b:b + 1, :n])
            torch.testing.assert_close(batch[b:b + 1, :n], alone, atol=1e-6, rtol=1e-5)
        # TBPTT: two halves with the state carried == the whole text at once
        whole, _ = model(tokens)
        first, hidden = model(tokens[:, :4])
        second, _ = model(tokens[:, 4:], hidden)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("cell", "features"), _product(CELLS, [False, True]))
def test_generator_padding_invariance(cell, features):
    model = model_of("generate", cell, features=features, dec_layers=2).eval()
    cond, tgt = _batch(model, "generate", B=3)
    with torch.no_grad():
        batch = model(cond, tgt)
        for b in range(3):
            n = int((tgt[b] != PAD_ID).sum())
            alone = model(cond[b:b + 1], tgt[b:b + 1, :n])
            torch.testing.assert_close(batch[b:b + 1, :n], alone, atol=1e-6, rtol=1e-5)


def test_generator_condition_changes_the_output():
    model = model_of("generate", "lstm").eval()
    tgt = torch.tensor([[BOS_ID, 5, 6, 7]])
    with torch.no_grad():
        a = model(torch.tensor([[0]]), tgt)
        b = model(torch.tensor([[1]]), tgt)
    assert not torch.allclose(a, b, atol=1e-4)


# --- the search interface -------------------------------------------------------------------


def _stepped(model, src, src_len, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probs (B, T, V) decode_step gives when fed bos, then tokens[:, 1:] (teacher
    forcing through the search interface)."""
    state = model.init_state(model.encode(src, src_len))
    prev = torch.full((src.size(0),), BOS_ID)
    out = []
    for t in range(tokens.size(1)):
        logp, state, _ = model.decode_step(prev, state)
        out.append(logp)
        prev = tokens[:, t]
    return torch.stack(out, 1)


@pytest.mark.parametrize(("cell", "kernels"), _product(CELLS, ["textbook", "fast"]))
def test_lm_forced_log_prob_is_the_sum_of_decode_steps(cell, kernels):
    model = model_of("lm", cell, dec_layers=2).eval()
    fast.prepare(model, "cpu", "infer", enabled=kernels == "fast")
    text = ids([10, 10, 10])
    with torch.no_grad():
        forced = model.forced_log_probs(text)  # after text[:, j], for j = 0..9
        gold = forced[:, :-1].gather(2, text[:, 1:].unsqueeze(2)).squeeze(2)  # (3, 9)
        for lens in ([1, 1, 1], [4, 4, 4], [1, 4, 7]):
            # prompt = the first n tokens; the steps then predict tokens n .. 9
            prompt, cont = text.clone(), torch.full_like(text, PAD_ID)
            for b, n in enumerate(lens):
                prompt[b, n:] = PAD_ID
                cont[b, :10 - n] = text[b, n:]
            logps = _stepped(model, prompt, torch.tensor(lens), cont)
            for b, n in enumerate(lens):
                stepped = logps[b, :10 - n].gather(1, cont[b, :10 - n].unsqueeze(1)).sum()
                torch.testing.assert_close(stepped, gold[b, n - 1:].sum(), atol=1e-5,
                                           rtol=1e-5)
        # no prompt: the text starts with bos, which the search feeds first
        with_bos = torch.cat([torch.full((3, 1), BOS_ID), text], 1)
        forced_bos = model.forced_log_probs(with_bos)
        want = forced_bos[:, :-1].gather(2, with_bos[:, 1:].unsqueeze(2)).sum()
        no_len = torch.zeros(3, dtype=torch.long)
        logps = _stepped(model, torch.zeros(3, 0, dtype=torch.long), no_len, text)
        torch.testing.assert_close(logps.gather(2, text.unsqueeze(2)).sum(), want, atol=1e-5,
                                   rtol=1e-5)
        # an all-padding prompt of length 0 is no prompt too
        padded = _stepped(model, torch.zeros(3, 3, dtype=torch.long), no_len, text)
        torch.testing.assert_close(padded, logps)


@pytest.mark.parametrize("cell", CELLS)
def test_generator_forced_log_probs_are_the_decode_steps(cell):
    model = model_of("generate", cell, conditioning="every_step").eval()
    cond, tgt = _batch(model, "generate", B=3)
    with torch.no_grad():
        forced = model.forced_log_probs(cond, tgt[:, :-1])
        stepped = _stepped(model, cond, torch.ones(3, dtype=torch.long), tgt[:, 1:])
    real = tgt[:, 1:] != PAD_ID
    torch.testing.assert_close(stepped[real], forced[real], atol=1e-5, rtol=1e-5)


def test_lm_state_carries_the_pending_prompt_token_through_expand_reorder_keep():
    h = torch.arange(6.0).view(1, 3, 2)
    state = LMState(hidden=h, feed=None, c=None, values=None, keys=None, mask=None,
                    pending=torch.tensor([7, 8, 9]))
    wide = state.expand(2)
    assert wide.pending.tolist() == [7, 7, 8, 8, 9, 9] and wide.group == 2
    swapped = wide.reorder(torch.tensor([1, 0, 2, 3, 5, 4]))
    assert swapped.pending.tolist() == [7, 7, 8, 8, 9, 9]
    kept = wide.keep(torch.tensor([0, 2]))
    assert kept.pending.tolist() == [7, 7, 9, 9] and isinstance(kept, LMState)
    assert kept.hidden[0, :, 0].tolist() == [0.0, 0.0, 4.0, 4.0]
    assert LMState(h, None, None, None, None, None).keep(torch.tensor([1])).pending is None


OPTS = DecodeConfig(beam=1, max_len_a=0.0, max_len_b=8, length_penalty=0.0)


def _as_list(hyps, approx: bool = False):
    """The outputs of a search; `approx`: scores to float tolerance (batched products may
    round differently from one sentence alone), for comparing with an exact list."""
    return [[(h.tokens, pytest.approx(h.score, abs=1e-4) if approx else h.score, h.ended)
             for h in b] for b in hyps]


@pytest.mark.parametrize(("cell", "features"), _product(CELLS, [False, True]))
def test_generate_beam_1_is_greedy(cell, features):
    model = model_of("generate", cell, features=features).eval()
    cond, ones = cond_batch(model, 4), torch.ones(4, dtype=torch.long)
    greedy = search.greedy(model, cond, ones, OPTS)
    beam = search.beam_search(model, cond, ones, OPTS)
    assert _as_list(greedy) == _as_list(beam, approx=True)
    # and each sentence's search alone finds the same
    for b in range(4):
        alone = search.greedy(model, cond[b:b + 1], ones[:1], OPTS)
        assert _as_list(alone) == _as_list(greedy[b:b + 1], approx=True)


@pytest.mark.parametrize("cell", CELLS)
def test_lm_beam_search_over_prompts_of_several_lengths(cell):
    """Beam search expands, reorders and shrinks the LM's state: a batch of prompts finds
    what each prompt finds alone, and beam 1 is greedy."""
    model = model_of("lm", cell).eval()
    lens = [3, 1, 5, 0]
    prompt, plen = ids(lens, width=6), torch.tensor(lens)
    opts = DecodeConfig(beam=3, nbest=2, max_len_a=0.0, max_len_b=6, length_penalty=0.0)
    batch = search.beam_search(model, prompt, plen, opts)
    for b, n in enumerate(lens):
        alone = search.beam_search(model, prompt[b:b + 1, :n], plen[b:b + 1], opts)
        assert _as_list(alone) == _as_list(batch[b:b + 1], approx=True)
    assert _as_list(search.greedy(model, prompt, plen, OPTS)) == \
        _as_list(search.beam_search(model, prompt, plen, OPTS), approx=True)


@pytest.mark.parametrize("structure", ["lm", "generate"])
def test_seeded_sampling_repeats(structure):
    model = model_of(structure, "gru").eval()
    if structure == "lm":
        src, lens = ids([2, 4, 3]), torch.tensor([2, 4, 3])
    else:
        src, lens = cond_batch(model, 3), torch.ones(3, dtype=torch.long)
    opts = DecodeConfig(sample=True, temperature=1.5, top_k=8, max_len_a=0.0, max_len_b=12)

    def draw(seed: int):
        g = torch.Generator().manual_seed(seed)
        return [_as_list(search.sample(model, src, lens, opts, generator=g))
                for _ in range(3)]

    first = draw(5)
    assert draw(5) == first
    assert draw(6) != first  # the seed matters (the chance of 3 x 3 equal draws is nil)


# --- fast kernels == textbook ---------------------------------------------------------------


def _outputs_and_grads(model, structure: str, batch):
    model.zero_grad()
    loss = _loss(model, structure, batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(("structure", "cell"), STRUCTURE_CELLS)
def test_training_kernels_give_the_textbook_outputs_and_gradients(structure, cell):
    model = model_of(structure, cell, features=structure == "generate" and cell == "rnn",
                     dropout=0.0)
    batch = _batch(model, structure)
    fast.prepare(model, "cpu", "train", enabled=False)
    want, want_grads = _outputs_and_grads(model, structure, batch)
    fast.prepare(model, "cpu", "train")
    got, got_grads = _outputs_and_grads(model, structure, batch)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


def test_prepare_reaches_every_encoder_and_decoder():
    for structure in ("classify", "tag", "lm", "generate"):
        model = model_of(structure)
        fast.prepare(model, "cpu", "train")
        parts = [m for m in model.modules() if isinstance(m, (Encoder, Decoder))]
        textbook = (packed_rnn, plain_rnn)
        assert parts and all(m.run_rnn not in textbook for m in parts), structure
        fast.prepare(model, "cpu", "train", enabled=False)
        assert all(m.run_rnn in textbook for m in parts)


@pytest.mark.parametrize(("structure", "cell"), STRUCTURE_CELLS)
def test_inference_kernels_give_the_textbook_outputs(structure, cell):
    model = model_of(structure, cell).eval()
    batch = _batch(model, structure, B=3)
    fed = ids([5, 5, 5])

    def run():
        with torch.no_grad():
            if structure == "classify":
                return model(batch[0], batch[1]), None
            if structure == "tag":
                return model(*batch[:3]), None
            if structure == "lm":
                src, lens = batch[0][:, :4], torch.tensor([4, 2, 3])
            else:
                src, lens = batch[0], torch.ones(3, dtype=torch.long)
            opts = DecodeConfig(beam=3, nbest=2, max_len_a=0.0, max_len_b=6)
            return _stepped(model, src, lens, fed), search.beam_search(model, src, lens, opts)

    fast.prepare(model, "cpu", "infer", enabled=False)
    want, want_beams = run()
    fast.prepare(model, "cpu", "infer")
    got, got_beams = run()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    if want_beams is not None:
        assert _as_list(got_beams) == _as_list(want_beams, approx=True)
