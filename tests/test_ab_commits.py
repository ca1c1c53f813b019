"""benchmarks/ab/ab_commits.py: the A/B summary of alternating `tandem bench` runs, and its
check that each side imports its own tree."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ab_commits",
                                               ROOT / "benchmarks" / "ab" / "ab_commits.py")
ab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ab)


def _run(train: float, beam64: float, extra: dict | None = None) -> dict:
    rows = [{"size": "small", "variant": "general", "params": 10, "train_tok_s": train,
             "train_ms_step": 5.0, "decode_b5_bs64_sent_s": beam64, "decode_b5_bs1_sent_s": 2.0,
             "utilisation": 0.1}]
    if extra:
        rows.append(extra)
    return {"rows": rows}


def test_compare_takes_medians_and_ratios_of_rows_both_sides_have():
    ref_row = {"size": "small", "variant": "reference (tutorial, general+feed)",
               "train_tok_s": 50.0}
    a = [_run(100, 10, ref_row), _run(300, 30, ref_row), _run(200, 20, ref_row)]
    b = [_run(190, 40), _run(210, 10), _run(230, 30)]
    res = ab.compare(a, b)
    [row] = res["rows"]  # the reference row (only in A) is left out
    assert row["a"] == {"train_tok_s": 200, "decode_b5_bs64_sent_s": 20,
                        "decode_b5_bs1_sent_s": 2.0}  # rates only, not ms or utilisation
    assert row["b"]["train_tok_s"] == 210 and row["b"]["decode_b5_bs64_sent_s"] == 30
    assert row["ratio_b_over_a"] == {"train_tok_s": 1.05, "decode_b5_bs64_sent_s": 1.5,
                                     "decode_b5_bs1_sent_s": 1.0}
    assert res["summary"]["train_tok_s"] == {"geomean": 1.05, "min": 1.05, "n": 1}
    beam = res["summary"]["beam5_sent_s"]
    assert beam["n"] == 2 and beam["min"] == 1.0
    assert beam["geomean"] == pytest.approx(1.5 ** 0.5, abs=1e-3)


def test_a_tree_without_tandem_is_refused(tmp_path):
    with pytest.raises(SystemExit, match=f"--a/--b {tmp_path}: `import tandem` gives"):
        ab.check_tree(sys.executable, tmp_path)
    assert ab.check_tree(sys.executable, ROOT / "src") == str(ROOT / "src" / "tandem")
