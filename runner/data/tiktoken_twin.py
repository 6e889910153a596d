"""A tiktoken twin of a byte-level BPE tokenizer, for counting tokens several times faster.

The data stage counts tokens of every long file to chunk it by ``max_unit_tokens``. The
``tokenizers`` library spends most of that time in its pre-tokenizer regex (about 1 MB/s per core
for Qwen2's pattern on code); tiktoken runs the same regex and the same byte-pair merges about
seven times faster. This module builds a ``tiktoken.Encoding`` from a ``tokenizer.json`` only when
the two must agree, and says which texts it cannot answer for (the caller then uses the tokenizer
itself):

- the model is byte-level BPE (every byte a token, merges listed in order, no dropout, no
  word prefixes or suffixes), and the pre-tokenizer is one regex split plus the byte-level
  mapping (Qwen2's layout), or GPT-2's byte-level regex;
- ranks are given in merge order, as tiktoken itself converts GPT-2's merges
  (``tiktoken.load.data_gym_to_mergeable_bpe_ranks``), and every merge yields a distinct token
  made of lower-ranked parts;
- tiktoken takes a piece that is a whole vocabulary entry as one token without merging; the
  ``tokenizers`` BPE merges (``ignore_merges: false``), so every merged entry is checked to
  come out of the tokenizer's own BPE as itself;
- the tokenizer cuts added tokens (``<|im_end|>``...) out of the text before anything else and
  tokenizes the pieces between them alone; so does this twin (longest match first), when no
  added token strips spaces or must be a single word; otherwise texts holding one, and text
  that is not NFC-normalised where the tokenizer normalises, are not answered here.

Tests compare token ids and offsets with the tokenizer on real source files.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

# The ByteLevel pre-tokenizer's regex when ``use_regex`` is true (GPT-2's pattern, as the
# tokenizers library writes it).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _byte_alphabet() -> dict[str, int]:
    """The printable character GPT-2's byte-level mapping gives each byte, reversed."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _pattern(pre_tokenizer: dict[str, Any] | None) -> str | None:
    """The one regex of a supported byte-level pre-tokenizer, or None."""
    if not pre_tokenizer:
        return None
    kind = pre_tokenizer.get("type")
    if kind == "ByteLevel":
        if pre_tokenizer.get("use_regex", True) and not pre_tokenizer.get("add_prefix_space"):
            return GPT2_PATTERN
        return None
    if kind != "Sequence":
        return None
    steps = pre_tokenizer.get("pretokenizers") or []
    if len(steps) != 2:
        return None
    split, level = steps
    if (
        split.get("type") != "Split"
        or split.get("behavior") != "Isolated"
        or split.get("invert")
        or "Regex" not in (split.get("pattern") or {})
    ):
        return None
    if (
        level.get("type") != "ByteLevel"
        or level.get("use_regex", True)
        or level.get("add_prefix_space")
    ):
        return None
    return split["pattern"]["Regex"]


def _normalizer_ok(normalizer: dict[str, Any] | None) -> tuple[bool, bool]:
    """(supported, needs NFC text)."""
    if normalizer is None:
        return True, False
    if normalizer.get("type") == "NFC":
        return True, True
    if normalizer.get("type") == "Sequence" and not normalizer.get("normalizers"):
        return True, False
    return False, False


class FastBPE:
    """Token ids and offsets of a byte-level BPE tokenizer, computed by tiktoken."""

    def __init__(
        self,
        encoding: Any,
        ids: np.ndarray,
        lengths: np.ndarray,
        added: dict[str, int],
        splits_added: bool,
        nfc: bool,
    ):
        self.encoding = encoding
        self._ids = ids  # rank -> tokenizer id
        self._lengths = lengths  # rank -> bytes in the token
        self._added = added  # added token text -> id
        self._added_heads = sorted({a[:2] for a in added})
        longest_first = sorted(added, key=len, reverse=True)
        self._added_pattern = re.compile("|".join(map(re.escape, longest_first))) if added else None
        self._splits_added = splits_added
        self._nfc = nfc

    def _has_added(self, text: str) -> bool:
        return any(head in text for head in self._added_heads) and any(
            token in text for token in self._added
        )

    def covers(self, text: str) -> bool:
        """Whether this twin gives the tokenizer's answer for ``text``."""
        if self._nfc and not text.isascii() and not unicodedata.is_normalized("NFC", text):
            return False
        return self._splits_added or not self._has_added(text)

    def _pieces(self, text: str) -> list[tuple[str, int | None]]:
        """``text`` cut around added tokens: ``(piece, None)`` and ``(token text, its id)``."""
        if self._added_pattern is None or not self._has_added(text):
            return [(text, None)]
        pieces: list[tuple[str, int | None]] = []
        position = 0
        for match in self._added_pattern.finditer(text):
            if match.start() > position:
                pieces.append((text[position : match.start()], None))
            pieces.append((match.group(0), self._added[match.group(0)]))
            position = match.end()
        if position < len(text):
            pieces.append((text[position:], None))
        return pieces

    def count(self, text: str) -> int:
        return sum(
            1 if added is not None else len(self.encoding.encode_ordinary(piece))
            for piece, added in self._pieces(text)
        )

    def encode(self, text: str) -> list[int]:
        """The tokenizer's ids for ``text``."""
        ids: list[int] = []
        for piece, added in self._pieces(text):
            if added is not None:
                ids.append(added)
            else:
                ranks = self.encoding.encode_ordinary(piece)
                ids.extend(self._ids[np.asarray(ranks, dtype=np.int64)].tolist())
        return ids

    def token_starts(self, text: str) -> list[int]:
        """Character offset where each token starts (a token inside a character: that
        character's offset), as the tokenizer's offsets give it."""
        return self.starts_over(text, -1).tolist()  # type: ignore[union-attr]

    def starts_over(self, text: str, limit: int) -> np.ndarray | None:
        """``token_starts`` as an array when ``text`` has more than ``limit`` tokens, else None.

        Chunking needs the offsets only of a text that does not fit; for one that fits, the
        count alone (the encoding) answers."""
        pieces = [
            (piece, added, None if added is not None else self.encoding.encode_ordinary(piece))
            for piece, added in self._pieces(text)
        ]
        if sum(1 if ranks is None else len(ranks) for _, _, ranks in pieces) <= limit:
            return None
        starts: list[np.ndarray] = []
        position = 0
        for piece, _, ranks in pieces:
            if ranks is None:
                starts.append(np.array([position], dtype=np.int64))
            elif ranks:
                starts.append(self._piece_starts(piece, ranks) + position)
            position += len(piece)
        return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)

    def _piece_starts(self, text: str, ranks: list[int]) -> np.ndarray:
        lengths = self._lengths[np.asarray(ranks, dtype=np.int64)]
        byte_starts = np.concatenate(([0], np.cumsum(lengths[:-1])))
        if text.isascii():
            return byte_starts
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        widths = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
        char_starts = np.concatenate(([0], np.cumsum(widths[:-1])))
        return np.searchsorted(char_starts, byte_starts, side="right") - 1


def twin_of(tokenizer_json: Path, tokenizer: Any) -> FastBPE | None:
    """A ``FastBPE`` for the tokenizer saved in ``tokenizer_json``, or None when tiktoken
    cannot be made to agree with it (see the module docstring) or is not installed.

    Checking agreement runs the tokenizer's BPE on every merge: about a second for a 150k
    vocabulary, once per data stage (worker processes inherit the twin)."""
    try:
        import tiktoken
    except ImportError:
        return None
    parts = _twin_parts(json.loads(tokenizer_json.read_text(encoding="utf-8")), tokenizer)
    if parts is None:
        return None
    pattern, ranks, ids, lengths, added, plain, nfc = parts
    encoding = tiktoken.Encoding(
        name=f"twin:{tokenizer_json}", pat_str=pattern, mergeable_ranks=ranks, special_tokens={}
    )
    return FastBPE(encoding, ids, lengths, added, plain, nfc)


def _twin_parts(spec: dict[str, Any], tokenizer: Any) -> tuple | None:
    """What a ``FastBPE`` is made of (regex, ranks, ids, byte lengths, added tokens, whether
    they are plain, NFC), or None when tiktoken cannot agree with the tokenizer."""
    model = spec.get("model") or {}
    if (
        model.get("type") != "BPE"
        or model.get("dropout")
        or model.get("continuing_subword_prefix")
        or model.get("end_of_word_suffix")
        or model.get("ignore_merges")
    ):
        return None
    pattern = _pattern(spec.get("pre_tokenizer"))
    supported, nfc = _normalizer_ok(spec.get("normalizer"))
    if pattern is None or not supported:
        return None
    vocab: dict[str, int] = model.get("vocab") or {}
    alphabet = _byte_alphabet()
    # Byte-level text -> the bytes it stands for; any other character fails to encode.
    to_bytes = str.maketrans({chr(c): "\uffff" for c in range(256)})
    to_bytes.update(str.maketrans({c: chr(b) for c, b in alphabet.items()}))
    ranks: dict[bytes, int] = {}
    ids: list[int] = []
    for char, byte in sorted(alphabet.items(), key=lambda item: item[1]):
        if char not in vocab:
            return None
        ranks[bytes([byte])] = byte
        ids.append(vocab[char])
    bpe = tokenizer.model
    for merge in model.get("merges") or []:
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        merged = left + right
        try:
            data = merged.translate(to_bytes).encode("latin-1")
            parts = (
                ranks[left.translate(to_bytes).encode("latin-1")],
                ranks[right.translate(to_bytes).encode("latin-1")],
            )
        except (KeyError, UnicodeEncodeError):
            return None  # a merge of something that is not a byte-level token
        if data in ranks or merged not in vocab:
            return None  # two merges make the same token: merge order is ambiguous
        rank = len(ranks)
        if max(parts) >= rank:
            return None
        # tiktoken takes a piece that is a whole entry as one token; the tokenizer merges it:
        # they agree only if merging the entry's bytes gives the entry back.
        if len(bpe.tokenize(merged)) != 1:
            return None
        ranks[data] = rank
        ids.append(vocab[merged])
    lengths = np.zeros(len(ranks), dtype=np.int64)
    for data, rank in ranks.items():
        lengths[rank] = len(data)
    entries = [t for t in spec.get("added_tokens") or [] if t.get("content")]
    added = {t["content"]: t["id"] for t in entries}
    plain = all(not (t.get("lstrip") or t.get("rstrip") or t.get("single_word")) for t in entries)
    return pattern, ranks, np.asarray(ids, dtype=np.int64), lengths, added, plain, nfc
