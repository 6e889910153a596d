"""A saved Hugging Face tokenizer read from its files with the ``tokenizers`` library alone.

The train stage needs a base tokenizer's special tokens and the ids of its end-of-turn strings
before it starts Axolotl; importing transformers for that cost the stage seconds that Axolotl's
own process pays again. ``tokenizer.json`` (the fast tokenizer every saved tokenizer carries)
and ``tokenizer_config.json`` / ``special_tokens_map.json`` hold all of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import UserError


@dataclass(frozen=True)
class AddedToken:
    content: str
    special: bool


class TokenizerFiles:
    """The parts of a ``PreTrainedTokenizer`` the train stage uses: ``encode``, the special
    tokens and ``added_tokens_decoder``."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.folder = folder
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise UserError(f"model.base: {folder} has no tokenizer.json (a fast tokenizer)")
        self._tokenizer = Tokenizer.from_file(str(path))
        config = _read(folder / "tokenizer_config.json")
        specials = _read(folder / "special_tokens_map.json")

        def token(key: str) -> str | None:
            value = config.get(key, specials.get(key))
            if isinstance(value, dict):
                value = value.get("content")
            return value if isinstance(value, str) else None

        self.bos_token, self.eos_token = token("bos_token"), token("eos_token")
        self.pad_token, self.unk_token = token("pad_token"), token("unk_token")
        # tokenizer.json lists every added token; tokenizer_config.json repeats them only when
        # the transformers that saved it wrote ``added_tokens_decoder`` (5.x does not).
        self.added_tokens_decoder = {
            int(i): AddedToken(token.content, bool(token.special))
            for i, token in self._tokenizer.get_added_tokens_decoder().items()
        }
        for i, entry in (config.get("added_tokens_decoder") or {}).items():
            if isinstance(entry, dict) and str(i).isdigit():
                self.added_tokens_decoder[int(i)] = AddedToken(
                    entry.get("content", ""), bool(entry.get("special"))
                )

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
