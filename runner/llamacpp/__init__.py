"""llama.cpp, as the runner uses it: one small module per job.

- ``locate``: the source tree (converter scripts, gguf-py, vocab files, templates), versions
- ``convert``: Hugging Face folder or LoRA adapter to GGUF with llama.cpp's own converters
- ``quantize``: llama.cpp's quantizer (a child process)
- ``metadata``: what a GGUF file says (chat template, special tokens, types)
- ``runtime``: greedy generation with llama.cpp's runtime (a child process)
- ``server``: llama.cpp's OpenAI-compatible server, started and stopped on 127.0.0.1

The names below are the ones other stages use.
"""

from runner.llamacpp.convert import CONVERTER_OUTTYPES, convert_lora, convert_model
from runner.llamacpp.locate import llama_cpp_dir, template_file, versions, vocab_gguf
from runner.llamacpp.metadata import Vocab, read_metadata, token_info
from runner.llamacpp.quantize import QUANT_TYPES, quantize
from runner.llamacpp.runtime import Generation, generate_chat

__all__ = [
    "CONVERTER_OUTTYPES",
    "QUANT_TYPES",
    "Generation",
    "Vocab",
    "convert_lora",
    "convert_model",
    "generate_chat",
    "llama_cpp_dir",
    "quantize",
    "read_metadata",
    "template_file",
    "token_info",
    "versions",
    "vocab_gguf",
]
