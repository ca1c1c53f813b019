"""Benchmark result files are never overwritten: a second run of the same name on the same day
is written beside the first."""

from __future__ import annotations

import json

from tandem.bench import write_result


def test_a_second_result_of_the_same_name_goes_beside_the_first(tmp_path):
    first = write_result(tmp_path, "speed", "-x", {"v": 1}, "cmd one")
    second = write_result(tmp_path, "speed", "-x", {"v": 2}, "cmd two")
    third = write_result(tmp_path, "speed", "-x", {"v": 3}, "cmd three")
    assert second == first.with_name(first.stem + "-run2.json")
    assert third == first.with_name(first.stem + "-run3.json")
    assert [json.loads(p.read_text())["v"] for p in (first, second, third)] == [1, 2, 3]
    assert json.loads(first.read_text())["command"] == "cmd one"
