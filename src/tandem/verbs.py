"""The torch-free halves of the classifier's and the tagger's verbs, shared by the PyTorch
loaded models (`tandem.structures`) and the lean runtime's (`tandem.runtime`): what the
command line, files and the server (/v1/predict) ask of them, over each backend's `predict` /
`tag` / `tag_frames`."""

from __future__ import annotations

from typing import Any

import numpy as np

from tandem.data.frames import read_series, segments
from tandem.errors import DataError


class ClassifierVerbs:
    """`predict_lines`, `predict_file`, `check_line` and the server's hooks over a subclass's
    `predict` and `fields`."""

    item = "text to classify"
    structure = "classify"
    verbs = ("predict",)
    endpoint = "/v1/predict"

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

    def request_model(self, limits: Any) -> type:
        """{"inputs": texts to classify (or series of frames: each a list of at most
        max_chars frames of num_features numbers), "topk": 1 .. the number of labels}."""
        from tandem.requests import frame_inputs, request, text_inputs, whole_int

        if self.reads_frames:
            inputs = frame_inputs(limits, self.fields.num_features, "series to classify")
        else:
            inputs = text_inputs(limits, "texts to classify", 1)
        return request("PredictRequest", inputs=inputs,
                       topk=(whole_int(ge=1, le=len(self.labels)),
                             _field(1, "the most likely labels to return")))

    def plan(self, req: Any, limits: Any) -> tuple[list[str], Any]:
        """Each text is an item; the batch key is topk. A text empty after tokenization is
        refused here, so it never fails a batch of other requests."""
        if self.reads_frames:
            return [np.asarray(x, np.float32) for x in req.inputs], req.topk
        for i, text in enumerate(req.inputs):
            if self.check_line(text) is not None:
                raise DataError(f"input {i + 1}: empty after tokenization; nothing to classify")
        return list(req.inputs), req.topk

    def run(self, items: list[str], key: Any) -> list[Any]:
        """The top-`key` labels of each text."""
        return self.predict(items, key)

    def answer(self, req: Any, key: Any, outputs: list[Any], ms: float) -> dict[str, Any]:
        """{"results": [{"input", "labels": [{"label", "prob"}]}], "ms"}."""
        return {"results": [{"input": f"{len(x)} frames" if self.reads_frames else x,
                             "labels": [{"label": lab, "prob": round(p, 6)} for lab, p in top]}
                            for x, top in zip(req.inputs, outputs, strict=True)],
                "ms": ms}


class TaggerVerbs:
    """`predict_lines`, `predict_file`, `check_line` and the server's hooks over a subclass's
    `tag` and `tag_frames`."""

    item = "sentence to tag"
    structure = "tag"
    verbs = ("predict",)
    endpoint = "/v1/predict"

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

    def request_model(self, limits: Any) -> type:
        """{"inputs": sentences to tag, split on whitespace (or series of frames)}."""
        from tandem.requests import frame_inputs, request, text_inputs

        if self.reads_frames:
            return request("PredictRequest", inputs=frame_inputs(
                limits, self.fields.num_features, "series to tag frame by frame"))
        return request("PredictRequest",
                       inputs=text_inputs(limits, "sentences to tag (split on whitespace)", 1))

    def plan(self, req: Any, limits: Any) -> tuple[list[str], Any]:
        """Each sentence is an item; every request batches with every other. A sentence of
        no words is refused here, so it never fails a batch of other requests."""
        if self.reads_frames:
            return [np.asarray(x, np.float32) for x in req.inputs], None
        for i, text in enumerate(req.inputs):
            if not text.split():
                raise DataError(f"input {i + 1}: no words to tag")
        return list(req.inputs), None

    def run(self, items: list[str], key: Any) -> list[Any]:
        """The (word, tag) pairs of each sentence (the tags of each series' frames)."""
        return self.tag_frames(items) if self.reads_frames else self.tag(items)

    def answer(self, req: Any, key: Any, outputs: list[Any], ms: float) -> dict[str, Any]:
        """{"results": [{"input", "words", "tags"}], "ms"} (series of frames: {"input",
        "tags", "segments"})."""
        if self.reads_frames:
            return {"results": [frame_record(f"{len(x)} frames", tags)
                                for x, tags in zip(req.inputs, outputs, strict=True)], "ms": ms}
        return {"results": [{"input": x, "words": [w for w, _ in pairs],
                             "tags": [t for _, t in pairs]}
                            for x, pairs in zip(req.inputs, outputs, strict=True)], "ms": ms}


def frame_record(where: str, tags: list[str]) -> dict[str, Any]:
    """A tagged series: {"input": where, "tags", "segments": [[first, end, tag], ...]}."""
    return {"input": where, "tags": tags, "segments": [list(seg) for seg in segments(tags)]}


def _field(default: Any, doc: str) -> Any:
    from pydantic import Field

    return Field(default, description=doc)
