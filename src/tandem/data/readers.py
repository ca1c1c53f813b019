"""Readers of the formats of the structures beyond seq2seq (classify, tag, lm, generate).

Every reader names the file and line of a bad line and what is allowed there (a DataError), or,
with on_bad_line "skip", skips it and counts it in a ReadStats, as the seq2seq readers of
corpora.py do. A tagged file skips (and counts) the whole sentence that holds a bad line, so a
sentence never loses a word. Items keep where they came from ("path:line") for later messages.

- classify: `read_labelled` (`text<TAB>label`, or `label<TAB>text` for generate),
  `read_sst2` (`LABEL<SPACE>sentence`), `read_label_folder` (one `<Label>.txt` per label, one
  item per line) with `hash_split` for corpora that have no official split;
- tag: `read_tagged` = `read_conllu` (CoNLL-U, plain or .gz, parsed with the conllu library;
  multiword-token ranges and empty nodes skipped) or `read_word_tag` (`word<TAB>tag` lines,
  a blank line between sentences);
- lm: `read_text` (a whole plain-text file, newlines kept), `split_text`;
- generate with feature vectors: `read_lines` (one text per line) and `load_features` (a .npy
  matrix, row i for line i).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import numpy as np

from tandem.data.corpora import ReadStats, bad_line, decode_line, open_lines, text_lines
from tandem.errors import DataError

log = logging.getLogger("tandem")

Labelled = tuple[str, str, str]
"""(text, label, where): one classify or generate item; where = "path:line"."""
Tagged = tuple[list[str], list[str], str]
"""(words, tags, where): one tagged sentence; where = "path:line" of its first line."""

SST2_LABELS = {"0": "negative", "1": "positive"}
"""SST-2's label digits and the label names tandem uses for them."""
SPLIT_PERCENT = (80, 10, 10)
"""train / dev / test shares (percent) of `hash_split`."""
CONLLU_COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS",
                  "MISC")
CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos")  # the columns conllu parses


def _no_items(path: Path, stats: ReadStats) -> DataError:
    skipped = f" ({stats.skipped} bad lines skipped)" if stats.skipped else ""
    return DataError(f"{path}: no usable lines{skipped}")


def _done(items: list, stats: ReadStats, path: Path, unit: str = "lines") -> None:
    stats.read = len(items)
    if not items:
        raise _no_items(path, stats)
    if stats.skipped:
        log.warning("%s: skipped %d bad %s, kept %d", path, stats.skipped, unit, stats.read)


# --- classify / generate --------------------------------------------------------------------


def read_labelled(path: str | Path, on_bad_line: str = "error", label_first: bool = False
                  ) -> tuple[list[Labelled], ReadStats]:
    """Items of a `text<TAB>label` file (plain or .gz), or of a `label<TAB>text` file with
    `label_first` (the generate format). The label is the field on its side of the first
    (label_first) or last tab, so a text may hold tabs; text and label must not be empty.
    Returns ([(text, label, "path:line")], stats)."""
    path = Path(path)
    form = "label<TAB>text" if label_first else "text<TAB>label"
    items: list[Labelled] = []
    stats = ReadStats()
    for i, line in text_lines(path, on_bad_line, stats):
        if not line.strip():
            bad_line(f"{path}:{i}: empty line; each line is {form}", on_bad_line, stats)
            continue
        if "\t" not in line:
            bad_line(f"{path}:{i}: no tab; each line is {form}", on_bad_line, stats)
            continue
        if label_first:
            label, text = line.split("\t", 1)
        else:
            text, label = line.rsplit("\t", 1)
        label = label.strip()
        if not text.strip() or not label:
            bad_line(f"{path}:{i}: empty {'text' if not text.strip() else 'label'}; each line "
                     f"is {form}", on_bad_line, stats)
            continue
        items.append((text, label, f"{path}:{i}"))
    _done(items, stats, path)
    return items, stats


def read_sst2(path: str | Path, on_bad_line: str = "error") -> tuple[list[Labelled], ReadStats]:
    """Items of an SST-2 file (`stsa.binary.*`): `LABEL<SPACE>sentence` lines with LABEL 0 or 1,
    named as SST2_LABELS says (negative, positive). Returns ([(sentence, label, where)],
    stats)."""
    path = Path(path)
    items: list[Labelled] = []
    stats = ReadStats()
    for i, line in text_lines(path, on_bad_line, stats):
        digit, _, text = line.partition(" ")
        if digit not in SST2_LABELS:
            bad_line(f"{path}:{i}: SST-2 lines are 'LABEL sentence' with LABEL 0 (negative) or "
                     f"1 (positive); this one starts with {digit[:20]!r}", on_bad_line, stats)
            continue
        if not text.strip():
            bad_line(f"{path}:{i}: no sentence after the label; SST-2 lines are "
                     "'LABEL sentence'", on_bad_line, stats)
            continue
        items.append((text, SST2_LABELS[digit], f"{path}:{i}"))
    _done(items, stats, path)
    return items, stats


def read_label_folder(folder: str | Path, on_bad_line: str = "error"
                      ) -> tuple[list[Labelled], ReadStats]:
    """Items of a folder holding one `<Label>.txt` per label, one item per line (the names
    corpus: `Russian.txt` holds Russian surnames). Files in name order, lines in file order;
    other files are ignored. Returns ([(text, label, where)], stats)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected one <Label>.txt per label)")
    files = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if not files:
        raise DataError(f"{folder}: no <Label>.txt files (one file per label, one item per "
                        "line)")
    items: list[Labelled] = []
    stats = ReadStats()
    for f in files:
        for i, line in text_lines(f, on_bad_line, stats):
            if not line.strip():
                bad_line(f"{f}:{i}: empty line; each line is one item of label {f.stem!r}",
                         on_bad_line, stats)
                continue
            items.append((line, f.stem, f"{f}:{i}"))
    _done(items, stats, folder)
    return items, stats


def hash_bucket(text: str, seed: int = 0) -> int:
    """A number in [0, 100) fixed by the text (whitespace collapsed) and the seed: the first 8
    bytes, big-endian, of sha256("<seed>:<text>") modulo 100. The same on every machine."""
    key = f"{seed}:{' '.join(text.split())}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100


def hash_split(items: list[Labelled], seed: int = 0
               ) -> tuple[list[Labelled], list[Labelled], list[Labelled]]:
    """(train, dev, test) of `items` by hash_bucket of each text: < 80 train, < 90 dev, else
    test (SPLIT_PERCENT). Equal texts (under any label) land in the same split, so a test
    item was never seen in training; order within each split is kept."""
    cut1, cut2 = SPLIT_PERCENT[0], SPLIT_PERCENT[0] + SPLIT_PERCENT[1]
    out: tuple[list[Labelled], list[Labelled], list[Labelled]] = ([], [], [])
    for it in items:
        b = hash_bucket(it[0], seed)
        out[0 if b < cut1 else 1 if b < cut2 else 2].append(it)
    return out


# --- tag ------------------------------------------------------------------------------------


def _blocks(path: Path, lines: list[bytes], on_bad_line: str, stats: ReadStats
            ) -> list[list[tuple[int, str]]]:
    """The file's sentences: runs of non-blank lines as [(line number, text)]; a sentence with
    a line that is not UTF-8 is bad (an error, or skipped and counted)."""
    blocks: list[list[tuple[int, str]]] = []
    cur: list[tuple[int, str]] = []
    broken: str | None = None
    for i, raw in enumerate([*lines, b""], 1):
        if raw.strip():
            try:
                cur.append((i, decode_line(raw, path, i)))
            except DataError as e:
                broken = broken or str(e)
            continue
        if broken is not None:
            bad_line(broken, on_bad_line, stats)
        elif cur:
            blocks.append(cur)
        cur, broken = [], None
    return blocks


def _conllu_sentence(path: Path, block: list[tuple[int, str]], column: str
                     ) -> tuple[list[str], list[str]] | None:
    """(words, tags) of one CoNLL-U sentence block, None for a block of comments only.
    The conllu library parses the sentence's columns up to XPOS (what tagging reads; HEAD,
    FEATS and DEPS are left alone, and parsing them would triple the reading time); the form
    and tag come from the tab-separated columns themselves, so a form holding spaces stays
    whole."""
    import conllu
    from conllu.exceptions import ParseException

    rows = [(n, t, t.split("\t")) for n, t in block if not t.startswith("#")]
    if not rows:
        return None
    for n, _, cols in rows:
        if len(cols) != 10:
            raise DataError(f"{path}:{n}: a CoNLL-U word line has 10 tab-separated columns "
                            f"({' '.join(CONLLU_COLUMNS)}); this one has {len(cols)}")
    try:
        tokens = list(conllu.parse_token_and_metadata("\n".join(t for _, t, _ in rows),
                                                      fields=CONLLU_FIELDS))
    except ParseException as e:
        for n, t, _ in rows:  # find the line it was about
            try:
                conllu.parse_token_and_metadata(t, fields=CONLLU_FIELDS)
            except ParseException as e_line:
                raise DataError(f"{path}:{n}: not valid CoNLL-U: {e_line}") from None
        raise DataError(f"{path}:{block[0][0]}: not valid CoNLL-U: {e}") from None
    if len(tokens) != len(rows):  # conllu reads one token per word line; guard the pairing
        raise DataError(f"{path}:{block[0][0]}: not valid CoNLL-U: {len(rows)} word lines "
                        f"but {len(tokens)} tokens")
    col = CONLLU_COLUMNS.index(column.upper())
    words: list[str] = []
    tags: list[str] = []
    for (n, _, cols), tok in zip(rows, tokens, strict=True):
        wid = tok["id"]
        if isinstance(wid, tuple):  # a multiword-token range 1-2 or an empty node 8.1
            continue
        if wid != len(words) + 1:
            raise DataError(f"{path}:{n}: word ID {cols[0]!r} where {len(words) + 1} was "
                            "expected (word IDs count 1, 2, 3 ... in each sentence; ranges "
                            "1-2 and empty nodes 8.1 are skipped)")
        form, tag = cols[1], cols[col].strip()
        if not form.strip():
            raise DataError(f"{path}:{n}: empty FORM (column 2)")
        if tag in ("", "_"):
            raise DataError(f"{path}:{n}: no {column.upper()} tag (column {col + 1} is "
                            f"{cols[col]!r}); data.tag_column chooses upos or xpos")
        words.append(form)
        tags.append(tag)
    if not words:
        raise DataError(f"{path}:{block[0][0]}: a CoNLL-U sentence without words")
    return words, tags


def read_conllu(path: str | Path, column: str = "upos", on_bad_line: str = "error"
                ) -> tuple[list[Tagged], ReadStats]:
    """Sentences of a CoNLL-U file (.conllu or .conllu.gz) as ([(forms, tags, where)], stats),
    tags from the UPOS (column 4) or XPOS (column 5) column; multiword-token lines (ID `1-2`)
    and empty nodes (ID `8.1`) are not words and are skipped. A bad line (not 10 columns, an
    ID out of order, no tag, anything conllu refuses) names file:line; with on_bad_line
    "skip" its sentence is skipped and counted."""
    path = Path(path)
    stats = ReadStats()
    out: list[Tagged] = []
    for block in _blocks(path, open_lines(path), on_bad_line, stats):
        try:
            sent = _conllu_sentence(path, block, column)
        except DataError as e:
            bad_line(str(e), on_bad_line, stats)
            continue
        if sent is not None:
            out.append((sent[0], sent[1], f"{path}:{block[0][0]}"))
    _done(out, stats, path, "sentences")
    return out, stats


def read_word_tag(path: str | Path, on_bad_line: str = "error"
                  ) -> tuple[list[Tagged], ReadStats]:
    """Sentences of a `word<TAB>tag` file (plain or .gz): one word per line, a blank line
    between sentences. Returns ([(words, tags, where)], stats); a bad line (no tab, more than
    one, an empty word or tag) names file:line, or with on_bad_line "skip" its sentence is
    skipped and counted."""
    path = Path(path)
    stats = ReadStats()
    out: list[Tagged] = []
    for block in _blocks(path, open_lines(path), on_bad_line, stats):
        words: list[str] = []
        tags: list[str] = []
        for n, t in block:
            cols = t.split("\t")
            problem = ("no tab" if len(cols) == 1 else f"{len(cols) - 1} tabs" if len(cols) > 2
                       else "empty word" if not cols[0].strip()
                       else "empty tag" if not cols[1].strip() else None)
            if problem is not None:
                bad_line(f"{path}:{n}: {problem}; each line is word<TAB>tag, with a blank line "
                         "between sentences", on_bad_line, stats)
                break
            words.append(cols[0].strip())
            tags.append(cols[1].strip())
        else:
            out.append((words, tags, f"{path}:{block[0][0]}"))
    _done(out, stats, path, "sentences")
    return out, stats


def is_conllu(path: str | Path) -> bool:
    """Whether a path names a CoNLL-U file (.conllu or .conllu.gz)."""
    name = Path(path).name.lower()
    return name.endswith(".conllu") or name.endswith(".conllu.gz")


def read_tagged(path: str | Path, column: str = "upos", on_bad_line: str = "error"
                ) -> tuple[list[Tagged], ReadStats]:
    """A tagged file by its name: CoNLL-U (read_conllu) for .conllu / .conllu.gz, else
    `word<TAB>tag` lines (read_word_tag)."""
    if is_conllu(path):
        return read_conllu(path, column, on_bad_line)
    return read_word_tag(path, on_bad_line)


# --- lm / generate from features --------------------------------------------------------------


def read_text(path: str | Path, on_bad_line: str = "error") -> tuple[str, ReadStats]:
    """A whole plain-text file (or .gz) as one string, every character kept ('\\r\\n' read
    as '\\n'). Bytes that are not UTF-8 name file:line, or with on_bad_line "skip" their line
    is dropped and counted."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    stats = ReadStats()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if on_bad_line == "error":
            lineno = data.count(b"\n", 0, e.start) + 1
            col = e.start - (data.rfind(b"\n", 0, e.start) + 1)
            bad_line(f"{path}:{lineno}: not valid UTF-8 (byte {col})", on_bad_line, stats)
        kept = []
        for i, raw in enumerate(data.split(b"\n"), 1):
            try:
                kept.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                bad_line(f"{path}:{i}: not valid UTF-8", on_bad_line, stats)
        text = "\n".join(kept)
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise DataError(f"{path}: no text")
    stats.read = text.count("\n") + (not text.endswith("\n"))
    if stats.skipped:
        log.warning("%s: skipped %d lines that are not UTF-8", path, stats.skipped)
    return text, stats


def split_text(text: str, dev_fraction: float) -> tuple[str, str]:
    """(train, dev) of one text: the last `dev_fraction` of its characters is dev, cut at
    character int(len * (1 - dev_fraction)) (nanoGPT's and char-rnn's split of tiny
    Shakespeare: 90/10)."""
    cut = int(len(text) * (1 - dev_fraction))
    return text[:cut], text[cut:]


def read_lines(path: str | Path, on_bad_line: str = "error"
               ) -> tuple[list[tuple[int, str, str]], int, ReadStats]:
    """The lines of a plain-text file, one text each (generate from feature vectors): returns
    ([(row, text, where)], number of lines, stats) where row is the 0-based line index (the
    feature-matrix row of that line), so skipping a bad (empty, not UTF-8) line shifts no
    other line's row."""
    path = Path(path)
    lines = open_lines(path)
    items: list[tuple[int, str, str]] = []
    stats = ReadStats()
    for i, raw in enumerate(lines, 1):
        try:
            line = decode_line(raw, path, i)
        except DataError as e:
            bad_line(str(e), on_bad_line, stats)
            continue
        if not line.strip():
            bad_line(f"{path}:{i}: empty line; each line is one text (row {i - 1} of the "
                     "feature matrix is its condition)", on_bad_line, stats)
            continue
        items.append((i - 1, line, f"{path}:{i}"))
    _done(items, stats, path)
    return items, len(lines), stats


def load_features(path: str | Path, n_rows: int, text_path: str | Path) -> np.ndarray:
    """The feature matrix (N, F) float32 of a .npy file whose row i is the condition of line
    i of `text_path`. A file that is not a 2-D numeric .npy array, a row count other than the
    text's `n_rows` lines, or a NaN / infinite value is a DataError naming the files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (data.features: a .npy matrix, row i for "
                        f"line i of {text_path})")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError):  # numpy's own words here suggest unpickling: never done
        raise DataError(f"{path}: not a .npy array file; save the matrix with numpy.save (text "
                        "and pickled files are not read)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read: {e}") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: holds several arrays (.npz); save one matrix with np.save")
    if arr.ndim != 2:
        raise DataError(f"{path}: a feature matrix has 2 dimensions (rows, features); this one "
                        f"has shape {tuple(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or arr.dtype == np.bool_):
        raise DataError(f"{path}: features must be numbers; this array holds {arr.dtype}")
    if arr.shape[0] != n_rows:
        raise DataError(f"{path} has {arr.shape[0]} rows but {text_path} has {n_rows} lines; "
                        "row i of the matrix is the condition of line i")
    if arr.shape[1] < 1:
        raise DataError(f"{path}: the matrix has no feature columns")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise DataError(f"{path}: row {row} (line {row + 1} of {text_path}) holds NaN or "
                        "infinity (or a value too large for float32)")
    return arr
