"""llama.cpp, as the runner uses it: its converter scripts, its quantizer and its runtime.

The converter scripts (``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py``), their ``gguf-py``
and the vocab-only tokenizer files ship only in the llama-cpp-python sdist; ``make setup`` unpacks
that tree into ``.venv/llama.cpp``. The quantizer and the runtime are the compiled library of the
same pinned llama-cpp-python, so conversion, quantization and inference agree on one version.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import proc
from runner.errors import StageError, UserError

# Quantization types the recipe may list -> llama.cpp's ``llama_ftype`` constant names.
QUANT_TYPES: dict[str, str] = {
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q3_k_l": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}
CONVERTER_OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def llama_cpp_dir() -> Path:
    """The llama.cpp source tree: ``$RECIPE_LLAMA_CPP_DIR``, else ``.venv/llama.cpp``."""
    candidates = []
    if os.environ.get("RECIPE_LLAMA_CPP_DIR"):
        candidates.append(Path(os.environ["RECIPE_LLAMA_CPP_DIR"]).expanduser())
    else:
        candidates.append(Path(sys.prefix) / "llama.cpp")
        candidates.append(Path(__file__).resolve().parent.parent / ".venv" / "llama.cpp")
    for path in candidates:
        if (path / "convert_hf_to_gguf.py").is_file():
            return path
    raise UserError(
        "llama.cpp's converter was not found (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); run `make setup`, or set RECIPE_LLAMA_CPP_DIR to a llama.cpp source tree"
    )


def versions() -> dict[str, str]:
    """Versions that decide what conversion and inference produce (for cache keys and locks)."""
    from runner.models.cache import package_version

    result = {"llama-cpp-python": package_version("llama-cpp-python")}
    try:
        pyproject = (llama_cpp_dir() / "gguf-py" / "pyproject.toml").read_text()
        line = next(x for x in pyproject.splitlines() if x.startswith("version"))
        result["gguf-py"] = line.split("=", 1)[1].strip().strip('"')
    except (UserError, StopIteration, OSError):
        result["gguf-py"] = "absent"
    return result


def vocab_gguf(family: str) -> Path:
    """A vocab-only GGUF shipped with llama.cpp, e.g. ``qwen2`` -> ``models/ggml-vocab-qwen2.gguf``."""
    path = llama_cpp_dir() / "models" / f"ggml-vocab-{family}.gguf"
    if not path.is_file():
        raise UserError(f"llama.cpp ships no vocab file {path.name} (in {path.parent})")
    return path


def template_file(name: str) -> Path:
    """A real chat template shipped with llama.cpp under ``models/templates/``."""
    path = llama_cpp_dir() / "models" / "templates" / name
    if not path.is_file():
        raise UserError(f"llama.cpp ships no chat template {name} (in {path.parent})")
    return path


def converter_env() -> dict[str, str]:
    """Run the converter against its own ``gguf-py``, not whatever ``gguf`` is installed."""
    gguf_py = str(llama_cpp_dir() / "gguf-py")
    existing = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": gguf_py + (os.pathsep + existing if existing else "")}


def converter_argv(model_dir: Path, out_path: Path, outtype: str = "f16") -> list[str]:
    """argv of ``convert_hf_to_gguf.py`` for a Hugging Face model folder."""
    if outtype not in CONVERTER_OUTTYPES:
        raise UserError(f"the converter writes {', '.join(CONVERTER_OUTTYPES)}, not '{outtype}'")
    script = llama_cpp_dir() / "convert_hf_to_gguf.py"
    return proc.python_argv(
        str(script), str(model_dir), "--outfile", str(out_path), "--outtype", outtype
    )


def lora_converter_argv(
    adapter_dir: Path, base_dir: Path, out_path: Path, outtype: str = "f16"
) -> list[str]:
    """argv of ``convert_lora_to_gguf.py``; ``base_dir`` gives the base config (no weights needed)."""
    script = llama_cpp_dir() / "convert_lora_to_gguf.py"
    return proc.python_argv(
        str(script),
        "--base",
        str(base_dir),
        "--outfile",
        str(out_path),
        "--outtype",
        outtype,
        str(adapter_dir),
    )


def _default_log(out_path: Path) -> Path:
    return out_path.parent / f"{out_path.name}.log"


def _run_converter(
    argv: list[str], out_path: Path, what: str, stage: str, log_file: Path | None
) -> Path:
    """Run one of llama.cpp's converter scripts and check that it wrote its output."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    proc.run(argv, stage=stage, log_file=log_file or _default_log(out_path), env=converter_env())
    if not out_path.is_file():
        raise StageError(stage, f"the {what} finished but wrote no {out_path}")
    return out_path


def convert_model(
    model_dir: Path,
    out_path: Path,
    outtype: str = "f16",
    *,
    stage: str = "gguf",
    log_file: Path | None = None,
) -> Path:
    """Convert a Hugging Face model folder to one GGUF file with llama.cpp's own converter."""
    argv = converter_argv(Path(model_dir), out_path, outtype)
    return _run_converter(argv, out_path, "converter", stage, log_file)


def convert_lora(
    adapter_dir: Path,
    base_dir: Path,
    out_path: Path,
    outtype: str = "f16",
    *,
    stage: str = "gguf",
    log_file: Path | None = None,
) -> Path:
    """Convert a PEFT LoRA adapter folder to a GGUF adapter (for ``ADAPTER`` in a Modelfile)."""
    argv = lora_converter_argv(Path(adapter_dir), Path(base_dir), out_path, outtype)
    return _run_converter(argv, out_path, "LoRA converter", stage, log_file)


def quantize(
    src: Path, dst: Path, qtype: str, *, stage: str = "gguf", log_file: Path | None = None
) -> Path:
    """Quantize ``src`` (an f16/bf16/f32 GGUF) to ``qtype`` with llama.cpp's quantizer.

    Runs in a child process: a crash inside the C library (bad tensor shapes, out of memory)
    then fails this stage with a log instead of killing the runner.
    """
    if qtype not in QUANT_TYPES:
        raise UserError(f"unknown quantization type '{qtype}' (known: {', '.join(QUANT_TYPES)})")
    dst.parent.mkdir(parents=True, exist_ok=True)
    argv = proc.python_argv("-m", "runner.llamacpp", "quantize", str(src), str(dst), qtype)
    proc.run(argv, stage=stage, log_file=log_file or _default_log(dst))
    if not dst.is_file():
        raise StageError(stage, f"the quantizer finished but wrote no {dst}")
    return dst


def _quantize_here(src: str, dst: str, qtype: str) -> int:
    """The child side of :func:`quantize`: one call to ``llama_model_quantize``."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[qtype])
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if status != 0:
        print(f"llama_model_quantize returned {status}", file=sys.stderr)
    return 0 if status == 0 else 1


# --- reading GGUF metadata -------------------------------------------------------------------

_TOKEN_KEYS = ("bos", "eos", "eot", "eom", "padding", "unknown")


def read_metadata(gguf_path: Path) -> dict[str, Any]:
    """The GGUF fields the runner checks: architecture, file type, chat template, special ids.

    ``tokens`` maps each special role (``eos``, ``eot``...) to ``{"id": n, "text": "<|im_end|>"}``.
    """
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    fields = reader.fields

    def value(key: str) -> Any:
        f = fields.get(key)
        return None if f is None else f.contents()

    token_list = fields.get("tokenizer.ggml.tokens")
    specials: dict[str, dict[str, Any]] = {}
    for role in _TOKEN_KEYS:
        token_id = value(f"tokenizer.ggml.{role}_token_id")
        if token_id is None:
            continue
        text = token_list.contents(int(token_id)) if token_list is not None else None
        specials[role] = {"id": int(token_id), "text": text}
    return {
        "architecture": value("general.architecture"),
        "name": value("general.name"),
        "file_type": value("general.file_type"),
        "chat_template": value("tokenizer.chat_template"),
        "tokenizer_model": value("tokenizer.ggml.model"),
        "tokenizer_pre": value("tokenizer.ggml.pre"),
        "vocab_size": len(token_list.data) if token_list is not None else 0,
        "add_bos_token": value("tokenizer.ggml.add_bos_token"),
        "tokens": specials,
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
        "adapter_type": value("adapter.type"),
    }


def token_info(gguf_path: Path, texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """How llama.cpp's runtime tokenizes each text, and whether it ends generation there.

    Loads only the vocabulary. ``end_of_generation`` is llama.cpp's own verdict
    (``llama_vocab_is_eog``), which is what decides whether Ollama or llama.cpp stops.
    """
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        result = {}
        for text in texts:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            eog = len(ids) == 1 and bool(llama_cpp.llama_vocab_is_eog(vocab, ids[0]))
            result[text] = {"ids": list(ids), "end_of_generation": eog}
        return result
    finally:
        llm.close()


# --- generation ------------------------------------------------------------------------------


@dataclass
class Generation:
    """One greedy completion. ``finish_reason`` is ``stop`` when an end token ended it, else ``length``."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    end_token: str | None = None  # the end-of-generation token that stopped it, as text
    stop_string: str | None = None  # a caller's stop string that cut the text, if any
    token_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "token_ids"}


def generate_chat(
    gguf_path: Path,
    prompts: Sequence[str],
    max_tokens: int = 64,
    stop: Sequence[str] = (),
    *,
    n_ctx: int = 4096,
    lora_path: Path | None = None,
    stage: str = "generate",
    log_file: Path | None = None,
) -> list[Generation]:
    """Greedy-generate from each already-rendered chat prompt with llama.cpp's runtime.

    Prompts are tokenized exactly as written (special tokens parsed, no BOS added): the chat
    template already wrote every special token the model was trained with, as in training.
    Generation ends on any end-of-generation token of the GGUF (``stop``), or at ``max_tokens``
    (``length``); a caller's ``stop`` string also ends it and is reported as ``stop_string``.

    Runs in a child process, so that a crash in the C library fails a stage with a log instead
    of killing the runner. If the child dies, it is retried once without llama.cpp's extra CPU
    buffer types: on some virtual machines the CPU reports AMX, the kernel grants it, and the
    first AMX instruction still raises SIGILL (seen on this project's CI machines).
    """
    global _EXTRA_BUFFERS
    request = {
        "model": str(gguf_path),
        "prompts": list(prompts),
        "max_tokens": max_tokens,
        "stop": list(stop),
        "n_ctx": n_ctx,
        "lora_path": str(lora_path) if lora_path else None,
    }
    with tempfile.TemporaryDirectory(prefix="recipe-generate-") as tmp:
        log = log_file or Path(tmp) / "generate.log"
        attempts = [False] if _EXTRA_BUFFERS is False else [True, False]
        for i, extra in enumerate(attempts):
            req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
            req.write_text(json.dumps({**request, "extra_buffers": extra}), encoding="utf-8")
            argv = proc.python_argv("-m", "runner.llamacpp", "generate", str(req), str(res))
            try:
                proc.run(argv, stage=stage, log_file=log)
            except StageError as exc:
                if i + 1 < len(attempts):
                    continue
                text = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
                raise StageError(
                    stage, f"llama.cpp could not run {gguf_path}: {exc.message}\n{text}"
                ) from None
            _EXTRA_BUFFERS = extra
            rows = json.loads(res.read_text(encoding="utf-8"))
            return [Generation(**row) for row in rows]
    raise AssertionError("unreachable")


# None: not known yet in this process; False: extra buffer types crashed here once.
_EXTRA_BUFFERS: bool | None = None
if os.environ.get("RECIPE_LLAMA_EXTRA_BUFFERS", "").lower() in ("0", "false", "off"):
    _EXTRA_BUFFERS = False


def _generate_here(request_file: str, result_file: str) -> int:
    """The child side of :func:`generate_chat`."""
    import llama_cpp

    request = json.loads(Path(request_file).read_text(encoding="utf-8"))
    if not request["extra_buffers"]:
        # The high-level Llama class has no switch for it: change the defaults it starts from
        # (in this child process only; llama.py reads them from the llama_cpp.llama_cpp module).
        import llama_cpp.llama_cpp as low_level

        default_params = low_level.llama_model_default_params

        def without_extra_buffers():
            params = default_params()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = without_extra_buffers
    llm = llama_cpp.Llama(
        model_path=request["model"],
        n_ctx=request["n_ctx"],
        n_threads=os.cpu_count() or 1,
        seed=0,
        verbose=False,
        lora_path=request["lora_path"],
    )
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    rows = [
        _generate_one(llm, vocab, p, request["max_tokens"], request["stop"]).__dict__
        for p in request["prompts"]
    ]
    llm.close()
    Path(result_file).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return 0


def _generate_one(llm: Any, vocab: Any, prompt: str, max_tokens: int, stop: Sequence[str]):
    import llama_cpp

    prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    if len(prompt_ids) + max_tokens > llm.n_ctx():
        raise UserError(
            f"a prompt of {len(prompt_ids)} tokens plus {max_tokens} new tokens does not fit "
            f"the context of {llm.n_ctx()} tokens"
        )
    out: list[int] = []
    result = Generation("", "length", len(prompt_ids), 0)
    for token in llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            result.finish_reason = "stop"
            result.end_token = llm.detokenize([token], special=True).decode("utf-8", "replace")
            break
        out.append(token)
        text = llm.detokenize(out, prev_tokens=prompt_ids, special=True).decode("utf-8", "replace")
        cut = next((s for s in stop if s in text), None)
        if cut is not None:
            result.finish_reason, result.stop_string = "stop", cut
            break
        if len(out) >= max_tokens:
            break
    text = llm.detokenize(out, prev_tokens=prompt_ids, special=True).decode("utf-8", "replace")
    if result.stop_string:
        text = text[: text.index(result.stop_string)]
    result.text = text
    result.completion_tokens = len(out)
    result.token_ids = out
    return result


def _main(argv: list[str]) -> int:
    """``python -m runner.llamacpp quantize SRC DST TYPE`` (used by :func:`quantize`)."""
    if len(argv) == 4 and argv[0] == "quantize":
        return _quantize_here(argv[1], argv[2], argv[3])
    if len(argv) == 3 and argv[0] == "generate":
        return _generate_here(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "metadata":
        print(json.dumps(read_metadata(Path(argv[1])), indent=2, default=str))
        return 0
    print("usage: python -m runner.llamacpp quantize SRC DST TYPE | metadata FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
