"""A GGUF file's header (its key-value metadata and tensor table), read by ggml's own GGUF
reader: ``gguf_init_from_file`` in the ``libggml-base`` that llama-cpp-python ships, the code
llama.cpp itself loads models with.

gguf-py's ``GGUFReader`` builds several NumPy views for every element of every array, which
costs 10 s for one Qwen file on 2 cores (151k tokens and 151k merges); a quickstart run read
five such files (the GGUF stage checks each file it wrote, the Ollama and smoke stages read
them again). The C reader takes milliseconds. It reads the header only (``no_alloc``), never
the tensor data.

Only files this tool wrote go through here. A GGUF base model a user names is read by gguf-py
(``runner.models.gguf_base``), the reader transformers dequantizes it with.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from pathlib import Path
from typing import Any

# enum gguf_type (ggml/include/gguf.h)
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY = range(10)
_UINT64, _INT64, _FLOAT64 = 10, 11, 12
_SCALARS: dict[int, tuple[str, Any]] = {
    _UINT8: ("gguf_get_val_u8", ctypes.c_uint8),
    _INT8: ("gguf_get_val_i8", ctypes.c_int8),
    _UINT16: ("gguf_get_val_u16", ctypes.c_uint16),
    _INT16: ("gguf_get_val_i16", ctypes.c_int16),
    _UINT32: ("gguf_get_val_u32", ctypes.c_uint32),
    _INT32: ("gguf_get_val_i32", ctypes.c_int32),
    _FLOAT32: ("gguf_get_val_f32", ctypes.c_float),
    _BOOL: ("gguf_get_val_bool", ctypes.c_bool),
    _UINT64: ("gguf_get_val_u64", ctypes.c_uint64),
    _INT64: ("gguf_get_val_i64", ctypes.c_int64),
    _FLOAT64: ("gguf_get_val_f64", ctypes.c_double),
}
# Arrays of numbers are read from their raw data: bool arrays are stored as int8.
_ELEMENTS: dict[int, Any] = {
    **{t: c for t, (_, c) in _SCALARS.items() if t != _BOOL},
    _BOOL: ctypes.c_int8,
}


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


@functools.cache
def _library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-cpp-python is not installed: run `make setup`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "lib"
    candidates = sorted(folder.glob("libggml-base.*")) or sorted(folder.glob("ggml-base.*"))
    if not candidates:
        raise RuntimeError(f"no libggml-base in {folder}: reinstall llama-cpp-python")
    lib = ctypes.CDLL(str(candidates[0]))
    ctx, key = ctypes.c_void_p, ctypes.c_int64
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "gguf_init_from_file": (ctx, [ctypes.c_char_p, _InitParams]),
        "gguf_free": (None, [ctx]),
        "gguf_get_n_kv": (ctypes.c_int64, [ctx]),
        "gguf_get_key": (ctypes.c_char_p, [ctx, key]),
        "gguf_find_key": (ctypes.c_int64, [ctx, ctypes.c_char_p]),
        "gguf_get_kv_type": (ctypes.c_int, [ctx, key]),
        "gguf_get_arr_type": (ctypes.c_int, [ctx, key]),
        "gguf_get_arr_n": (ctypes.c_size_t, [ctx, key]),
        "gguf_get_arr_str": (ctypes.c_char_p, [ctx, key, ctypes.c_size_t]),
        "gguf_get_arr_data": (ctypes.c_void_p, [ctx, key]),
        "gguf_get_val_str": (ctypes.c_char_p, [ctx, key]),
        "gguf_get_n_tensors": (ctypes.c_int64, [ctx]),
        "gguf_get_tensor_type": (ctypes.c_int, [ctx, key]),
        "ggml_type_name": (ctypes.c_char_p, [ctypes.c_int]),
        **{name: (ctype, [ctx, key]) for name, ctype in _SCALARS.values()},
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", errors="replace")


class GGUFHeader:
    """The metadata and tensor table of one GGUF file; use as a context manager."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lib = _library()
        handle = self._lib.gguf_init_from_file(str(self.path).encode(), _InitParams(True, None))
        if not handle:
            raise ValueError(f"{self.path} is not a GGUF file ggml can read")
        self._ctx: int | None = handle

    def close(self) -> None:
        if self._ctx:
            self._lib.gguf_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> GGUFHeader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _id(self, key: str) -> int:
        if not self._ctx:
            raise ValueError(f"{self.path}: the header is closed")
        return self._lib.gguf_find_key(self._ctx, key.encode())

    def keys(self) -> list[str]:
        n = self._lib.gguf_get_n_kv(self._ctx)
        return [_text(self._lib.gguf_get_key(self._ctx, i)) for i in range(n)]

    def get(self, key: str, default: Any = None) -> Any:
        """A value as Python: int, float, bool, str, or a list for an array; ``default``
        when the file has no such key."""
        index = self._id(key)
        if index < 0:
            return default
        kind = self._lib.gguf_get_kv_type(self._ctx, index)
        if kind == _STRING:
            return _text(self._lib.gguf_get_val_str(self._ctx, index))
        if kind == _ARRAY:
            return self._array(key, index)
        name, _ = _SCALARS[kind]
        return getattr(self._lib, name)(self._ctx, index)

    def _array(self, key: str, index: int) -> list[Any]:
        n = self._lib.gguf_get_arr_n(self._ctx, index)
        kind = self._lib.gguf_get_arr_type(self._ctx, index)
        if kind == _STRING:
            return [_text(self._lib.gguf_get_arr_str(self._ctx, index, i)) for i in range(n)]
        if kind not in _ELEMENTS:  # nested arrays: none of the keys read here has one
            raise ValueError(f"{key} in {self.path.name} is an array of arrays")
        if n == 0:
            return []
        data = self._lib.gguf_get_arr_data(self._ctx, index)
        values = list((_ELEMENTS[kind] * n).from_address(data))
        return [bool(v) for v in values] if kind == _BOOL else values

    def length(self, key: str) -> int:
        """The number of elements of an array value (0 when the key is absent)."""
        index = self._id(key)
        if index < 0 or self._lib.gguf_get_kv_type(self._ctx, index) != _ARRAY:
            return 0
        return self._lib.gguf_get_arr_n(self._ctx, index)

    def item(self, key: str, position: int) -> Any:
        """Element ``position`` of an array value."""
        index = self._id(key)
        if not 0 <= position < self.length(key):
            raise IndexError(f"{key}[{position}] is not in {self.path.name}")
        kind = self._lib.gguf_get_arr_type(self._ctx, index)
        if kind == _STRING:
            return _text(self._lib.gguf_get_arr_str(self._ctx, index, position))
        if kind not in _ELEMENTS:  # nested arrays: none of the keys read here has one
            raise ValueError(f"{key} in {self.path.name} is an array of arrays")
        element = _ELEMENTS[kind]
        data = ctypes.cast(self._lib.gguf_get_arr_data(self._ctx, index), ctypes.POINTER(element))
        value = data[position]
        return bool(value) if kind == _BOOL else value

    def tensor_types(self) -> set[str]:
        """The ggml types of the file's tensors, named as gguf-py names them (``Q4_K``)."""
        n = self._lib.gguf_get_n_tensors(self._ctx)
        kinds = {self._lib.gguf_get_tensor_type(self._ctx, i) for i in range(n)}
        return {_text(self._lib.ggml_type_name(kind)).upper() for kind in kinds}
