"""The lean runtime's batches of one call searched side by side (`RuntimeModel.each_batch`):
results in the batches' order whatever order they finish in, on several threads when asked,
one after the other when not; a call of fewer batches than threads split so that each thread
has one (`spread`); and the sorted lexicon's lookups (`tandem.data.lexicon`) find
every word and nothing else, words sharing their first 8 bytes included."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from tandem.data.lexicon import Lexicon
from tandem.runtime.models import RuntimeModel


def runner(threads: int) -> SimpleNamespace:
    model = SimpleNamespace(threads=threads, _pool=None)
    model.spread = lambda batches: RuntimeModel.spread(model, batches)
    return model


def slow_square(seen: list):
    def fn(batch: list[int]) -> list[int]:
        seen.append(threading.get_ident())
        time.sleep(0.02 * (6 - batch[0]))  # the first batches finish last
        return [b * b for b in batch]
    return fn


def test_batches_come_back_in_order_from_several_threads():
    seen: list = []
    model = runner(3)
    out = RuntimeModel.each_batch(model, slow_square(seen), [[b] for b in range(6)])
    assert out == [[b * b] for b in range(6)]
    assert len(set(seen)) > 1 and threading.get_ident() not in seen


def test_one_batch_is_split_across_the_threads_and_joined_back_in_order():
    seen: list = []
    out = RuntimeModel.each_batch(runner(3), slow_square(seen), [[0, 1, 2, 3, 4]])
    assert out == [[0, 1, 4, 9, 16]]
    assert len(seen) == 3 and len(set(seen)) > 1


@pytest.mark.parametrize("threads, parallel, batches", [(1, True, 6), (3, False, 6),
                                                        (3, True, 1)])
def test_one_thread_one_item_or_parallel_off_run_in_the_caller(threads, parallel, batches):
    seen: list = []
    out = RuntimeModel.each_batch(runner(threads), slow_square(seen),
                                  [[b] for b in range(batches)], parallel=parallel)
    assert out == [[b * b] for b in range(batches)]
    assert set(seen) == {threading.get_ident()}


@pytest.mark.parametrize("threads, batches, want", [
    (3, [[1, 2, 3, 4]], [[1], [2], [3, 4]]),
    (2, [[1, 2, 3], [4]], [[1, 2, 3], [4]]),
    (4, [[1, 2, 3], [4]], [[1], [2], [3], [4]]),
    (3, [[1, 2, 3], [4]], [[1], [2, 3], [4]]),
    (3, [[1]], [[1]]),
    (1, [[1, 2]], [[1, 2]]),
])
def test_few_batches_are_split_until_every_thread_has_one(threads, batches, want):
    got = RuntimeModel.spread(runner(threads), batches)
    assert got == want
    assert [x for b in got for x in b] == [x for b in batches for x in b]


WORDS = ["a", "ab", "abc'd", "abcdefg", "abcdefgh", "abcdefgha", "abcdefghij", "abcdefgz",
         "b", "zz", "\u00e9t\u00e9"]


def test_every_word_of_a_sorted_lexicon_is_found_and_nothing_else(tmp_path):
    words = sorted(WORDS, key=lambda w: w.encode("utf-8"))
    path = tmp_path / "lex.tsv"
    path.write_text("".join(f"{w}\tP{i}\tQ{i}\n" for i, w in enumerate(words)),
                    encoding="utf-8")
    lex = Lexicon(path)
    assert len(lex) == len(words)
    for i, w in enumerate(words):
        assert lex.get(w) == [f"P{i}", f"Q{i}"]
    for miss in ["", "abcdef", "abcdefghi", "abcdefghijk", "abcdefgy", "c", "\u00e9", "aa",
                 "abc"]:
        assert lex.get(miss) == [], miss


def test_an_empty_lexicon_finds_nothing(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    lex = Lexicon(tmp_path / "empty.tsv")
    assert len(lex) == 0 and lex.get("a") == []
