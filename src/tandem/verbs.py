"""The torch-free halves of the classifier's and the tagger's verbs, shared by the PyTorch
loaded models (`tandem.structures`) and the lean runtime's (`tandem.runtime`): what the
command line and files ask of them, over each backend's `predict` / `tag` / `tag_frames`."""

from __future__ import annotations

from typing import Any

from tandem.data.frames import read_series, segments


class ClassifierVerbs:
    """`predict_lines`, `predict_file` and `check_line` over a subclass's `predict` and
    `fields`."""

    item = "text to classify"

    def predict(self, texts: list, topk: int = 1) -> list[list[tuple[str, float]]]:
        raise NotImplementedError

    def predict_file(self, path: str, topk: int = 1) -> list[dict[str, Any]]:
        """The top-k labels of every series of a .ts, .npz or .npy file (labels in it, if
        any, are not used), one record each, its input the series' place in the file."""
        series = read_series(path, labelled=False)
        tops = self.predict([x for x, _, _ in series], topk)
        return [{"input": where, "labels": [{"label": lab, "prob": p} for lab, p in top]}
                for (_, _, where), top in zip(series, tops, strict=True)]

    def predict_lines(self, lines: list[str], topk: int = 1) -> list[dict[str, Any]]:
        """`predict` for the command line: one record per line, {"input", "labels": [{"label",
        "prob"}]}; a line empty after tokenization is refused naming it."""
        return [{"input": x, "labels": [{"label": lab, "prob": p} for lab, p in top]}
                for x, top in zip(lines, self.predict(lines, topk), strict=True)]

    def check_line(self, line: str) -> str | None:
        """Why `line` cannot be classified (nothing left after tokenization), or None."""
        if self.fields.encode_text(line):
            return None
        return (f"empty after tokenization (the model's {self.fields.tok.kind} tokenizer "
                "keeps none of its characters)")


class TaggerVerbs:
    """`predict_lines`, `predict_file` and `check_line` over a subclass's `tag` and
    `tag_frames`."""

    item = "sentence to tag"

    def tag(self, sentences: list) -> list[list[tuple[str, str]]]:
        raise NotImplementedError

    def tag_frames(self, series: list) -> list[list[str]]:
        raise NotImplementedError

    def predict_file(self, path: str, topk: int = 1) -> list[dict[str, Any]]:
        """The tag of every frame of every series of a .ts, .npz or .npy file (tags in it,
        if any, are not used), one record each: its place in the file, the tags and the
        segments (runs of one tag: first frame, end, tag)."""
        series = read_series(path, labelled=False)
        return [frame_record(where, tags) for (_, _, where), tags
                in zip(series, self.tag_frames([x for x, _, _ in series]), strict=True)]

    def predict_lines(self, lines: list[str], topk: int = 1) -> list[dict[str, Any]]:
        """`tag` for the command line: one record per line, {"input", "words", "tags"}."""
        return [{"input": x, "words": [w for w, _ in pairs], "tags": [t for _, t in pairs]}
                for x, pairs in zip(lines, self.tag(lines), strict=True)]

    def check_line(self, line: str) -> str | None:
        """Every non-blank line has words to tag."""
        return None


def frame_record(where: str, tags: list[str]) -> dict[str, Any]:
    """A tagged series: {"input": where, "tags", "segments": [[first, end, tag], ...]}."""
    return {"input": where, "tags": tags, "segments": [list(seg) for seg in segments(tags)]}
