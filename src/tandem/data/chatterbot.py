"""The English conversations of the `chatterbot-corpus` package as (message, reply) pairs.

Read from the installed package's YAML files (nothing is downloaded). Every utterance of a
conversation is paired with the one that follows it. Every 20th conversation (in file-name
order) is held out as the dev set, so a conversation never straddles the split."""

from __future__ import annotations

from importlib import resources

import yaml

from tandem.data.corpora import Pair
from tandem.errors import DataError

DEV_EVERY = 20


def _clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def conversations(language: str = "english", root=None) -> list[list[str]]:
    """The conversations (lists of turns) of every YAML file in `root` (default: the
    installed package's folder for `language`), in file-name order."""
    if root is None:
        try:
            root = resources.files("chatterbot_corpus") / "data" / language
        except ModuleNotFoundError:
            raise DataError("data.corpus chatterbot: the chatterbot-corpus package is not "
                            "installed (pip install chatterbot-corpus)") from None
    if not root.is_dir():
        raise DataError(f"data.corpus chatterbot: the package has no {language!r} folder")
    out = []
    for f in sorted((p for p in root.iterdir() if p.name.endswith(".yml")), key=lambda p: p.name):
        # BaseLoader keeps every scalar a string: "Yes" stays "Yes", not True
        doc = yaml.load(f.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
        for conv in doc.get("conversations", []):
            turns = [_clean(t) for t in conv if isinstance(t, str) and _clean(t)]
            if len(turns) >= 2:
                out.append(turns)
    return out


def pairs_split(language: str = "english") -> tuple[list[Pair], list[Pair]]:
    """The chatterbot-corpus English dialogues as (train, dev, test) pairs."""
    train: list[Pair] = []
    dev: list[Pair] = []
    for i, turns in enumerate(conversations(language)):
        target = dev if i % DEV_EVERY == DEV_EVERY - 1 else train
        target.extend(zip(turns[:-1], turns[1:], strict=True))
    return train, dev
