"""The server's OpenAPI schema states what it accepts: the request model is built from the
decoding options (DecodeConfig's fields, types, Ranges and docstrings) and the server's
limits, and a schema-driven fuzz (schemathesis) fails when the schema and the server disagree,
in either direction."""

from __future__ import annotations

import dataclasses
import sys
import warnings

import pytest
import schemathesis
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode  # the dev extra: a broken install fails, never skips
from schemathesis.config import SchemathesisConfig

from conftest import tiny_model
from tandem.config import Config, DataConfig, decode_fields
from tandem.data.dataset import build_fields
from tandem.data.vocab import EOS_ID
from tandem.errors import DataError
from tandem.serve import SERVER_SIDE, ServeOptions, create_app, server_defaults
from tandem.structures.translator import Translator

LIMITS = ServeOptions(max_inputs=3, max_chars=12, max_beam=4)
# A schema-valid request must be answered 2xx (not merely "not refused"); a schema-invalid one
# with a 4xx, 413 included (the server's limits on inputs and characters answer 413).
CHECKS = SchemathesisConfig.from_dict({"checks": {
    "positive_data_acceptance": {"expected-statuses": ["2xx"]},
    "negative_data_rejection": {"expected-statuses": [400, 413, 422]},
}})


@pytest.fixture(autouse=True)
def _subnormal_floats():
    """Training in this process (tandem.cpu.configure) flushes subnormal floats to zero;
    hypothesis' number strategies need them, so they are back for these tests."""
    flushed = sys.float_info.min / 2 == 0.0
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(flushed)


def _translator() -> Translator:
    """A random tiny model over a character vocabulary, its end of sentence made likely so
    outputs stay short: quick to decode, any output."""
    fields = build_fields(DataConfig(task="reverse"), [("abc", "cba"), ("hello", "olleh")])
    cfg = Config(data=DataConfig(task="reverse"))
    model = tiny_model(len(fields.src_vocab), len(fields.tgt_vocab))
    with torch.no_grad():
        model.decoder.generator.bias[EOS_ID] += 2.0
    return Translator(model, fields, cfg)


def fuzz(app, mode: GenerationMode, examples: int, shrink: bool = True) -> int:
    """Draw `examples` requests to /v1/translate from the app's own OpenAPI schema (valid ones
    for POSITIVE, invalid ones for NEGATIVE), send each and run schemathesis' checks on the
    answer; raises on the first disagreement. Returns how many requests were sent.
    schemathesis runs the app's lifespan (the batcher) itself, once per app."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CHECKS)
    sent = []
    phases = list(Phase) if shrink else [Phase.generate]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
              phases=phases)
    @given(schema["/v1/translate"]["POST"].as_strategy(generation_mode=mode))
    def check(case):
        sent.append(case.body)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # starlette's TestClient deprecation notice
            case.call_and_validate()

    check()
    return len(sent)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid-requests-answered", "invalid-requests-refused"])
def test_schema_and_server_agree(mode):
    assert fuzz(create_app(_translator(), LIMITS), mode, 60) == 60


class RefusesWideBeams(Translator):
    """A server bug on purpose: refuses beams over 2 that the schema (max_beam 4) allows."""

    def translate_full(self, inputs, *, opts=None, **kw):
        if opts is not None and opts.beam > 2:
            raise DataError(f"beam {opts.beam} refused")
        return super().translate_full(inputs, opts=opts, **kw)


def test_the_fuzz_fails_when_the_server_refuses_what_the_schema_allows():
    tr = _translator()
    app = create_app(RefusesWideBeams(tr.model, tr.fields, tr.config), LIMITS)
    with pytest.raises(BaseException) as info:
        fuzz(app, GenerationMode.POSITIVE, 100, shrink=False)
    found = info.value.exceptions if isinstance(info.value, BaseExceptionGroup) else [info.value]
    assert any("Schema-valid request rejected" in str(e) for e in found), info.value


def _request_schema(app) -> dict:
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
    return spec["components"]["schemas"]["TranslateRequest"]


def _branch(prop: dict) -> dict:
    """The non-null alternative of an optional field's schema."""
    return next(s for s in prop.get("anyOf", [prop]) if s.get("type") != "null")


def test_every_decoding_option_is_a_request_field_with_its_limits():
    """Generated from DecodeConfig: a new option reaches the server with no edit there."""
    tr = _translator()
    schema = _request_schema(create_app(tr, LIMITS))
    defaults = server_defaults(tr.decode_cfg, LIMITS)  # the beam cut to max_beam, nbest 1
    assert (defaults.beam, defaults.nbest) == (min(tr.decode_cfg.beam, LIMITS.max_beam), 1)
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert set(props) == {"inputs", "attention"} | {f.name for f in decode_fields()
                                                    if f.name not in SERVER_SIDE}
    inputs = props["inputs"]
    assert (inputs["minItems"], inputs["maxItems"]) == (1, LIMITS.max_inputs)
    assert inputs["items"]["maxLength"] == LIMITS.max_chars
    for f in decode_fields():
        if f.name in SERVER_SIDE:
            continue
        prop = props[f.name]
        assert prop["default"] == getattr(defaults, f.name), f.name
        assert prop["description"].startswith(f.doc)
        branch = _branch(prop)
        if f.range is not None and f.range.ge is not None:
            assert branch["minimum"] == f.range.ge, f.name
        if f.range is not None and f.range.le is not None:
            assert branch["maximum"] == f.range.le, f.name
    assert _branch(props["beam"])["maximum"] == LIMITS.max_beam
    assert _branch(props["nbest"])["maximum"] == LIMITS.max_beam
    assert _branch(props["length_norm"])["enum"] == ["power", "gnmt"]


def test_server_side_options_are_not_request_fields_and_are_refused_by_name():
    with TestClient(create_app(_translator(), LIMITS)) as c:
        for name in sorted(SERVER_SIDE):
            r = c.post("/v1/translate", json={"inputs": ["abc"], name: 1})
            assert r.status_code == 422 and r.json()["field"] == name, r.text


def test_no_inputs_is_refused_as_the_schema_says():
    app = create_app(_translator(), LIMITS)
    assert _request_schema(app)["properties"]["inputs"]["minItems"] == 1
    with TestClient(app) as c:
        r = c.post("/v1/translate", json={"inputs": []})
    assert r.status_code == 422 and r.json()["limit"] == "inputs"


def test_nbest_above_the_beam_gives_beam_outputs():
    """The schema cannot say nbest <= beam, so the server does not refuse it."""
    tr = _translator()
    with TestClient(create_app(tr, LIMITS)) as c:
        r = c.post("/v1/translate", json={"inputs": ["abc", "hello"], "beam": 2, "nbest": 4})
    assert r.status_code == 200, r.text
    want = tr.translate_full(["abc", "hello"], beam=2, nbest=2)
    assert [[h["text"] for h in res["hypotheses"]] for res in r.json()["results"]] == [
        [h.text for h in nb] for nb in want]


class Recording(Translator):
    """A translator that records the options of each decode call."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.seen = []

    def translate_full(self, inputs, *, opts=None, **kw):
        self.seen.append(opts)
        return super().translate_full(inputs, opts=opts, **kw)


def test_request_options_reach_the_search():
    """Each request field reaches the decode call, which answers as the translator does with
    those options (that each option changes the search is tested in test_decode_options)."""
    plain = _translator()
    tr = Recording(plain.model, plain.fields, plain.config)
    asks = [{"beam": 3, "nbest": 3, "length_penalty": 0.0},
            {"beam": 3, "nbest": 3, "length_norm": "gnmt", "coverage_penalty": 2.0},
            {"beam": 2, "no_repeat_ngram_size": 1, "allow_unk": False},
            {"sample": True, "temperature": 5.0, "top_k": 3}]
    with TestClient(create_app(tr, LIMITS)) as c:
        for ask in asks:
            r = c.post("/v1/translate", json={"inputs": ["abc", "hello"], **ask})
            assert r.status_code == 200, r.text
            assert {k: getattr(tr.seen[-1], k) for k in ask} == ask
            got = [[h["text"] for h in res["hypotheses"]] for res in r.json()["results"]]
            if ask.get("sample"):  # a sample: a draw from the allowed tokens
                assert all(len(nb) == 1 for nb in got)
                continue
            want = plain.translate_full(["abc", "hello"], **ask)
            assert got == [[h.text for h in nb] for nb in want], ask


def test_the_server_default_options_are_the_translators():
    tr = _translator().set_defaults(beam=3, no_repeat_ngram_size=1)
    with TestClient(create_app(tr, LIMITS)) as c:
        info = c.get("/v1/model").json()["decode_defaults"]
        r = c.post("/v1/translate", json={"inputs": ["hello"]})
    assert info == {**dataclasses.asdict(tr.decode_cfg), "nbest": 1}
    assert r.json()["beam"] == 3
    assert r.json()["outputs"] == tr.translate(["hello"], nbest=1)
