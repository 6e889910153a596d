"""What a run will cost before any GPU time is spent: parameters, trainable parameters, memory
per device for the chosen method, steps, and disk for the merged model and each GGUF.

The memory model is the usual arithmetic of mixed-precision training, kept explicit so a user
can check it: 16-bit weights take 2 bytes a parameter, 4-bit NF4 with double quantization about
4.13 bits (bitsandbytes' block size 64 with an 8-bit absmax per block and a second-level scale),
8-bit 1 byte; a trained parameter carries its gradient and AdamW's two moments (LoRA adapters
train in fp32: 4 + 4 + 8 bytes; a full fine-tune keeps a 16-bit copy, 16-bit gradients and fp32
master weights and moments: 2 + 2 + 12 bytes). DeepSpeed ZeRO-1/2/3 and FSDP split optimizer
states, gradients and weights across the devices. Activations are the tensors a decoder block
keeps for its backward pass (about 8h + 2kv + 4i values a token, 16-bit) or, with gradient
checkpointing, its input alone plus one block recomputed; the logits add batch x seq x vocab in
16 bits and again in fp32 for the loss. The numbers are estimates (allocator slack, kernels'
workspaces, framework buffers come on top: a fixed margin is added), good to a few tens of
percent, which is what deciding "will it fit" needs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runner.models.shapes import ModelShape, model_shape

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

GIB = 1024**3
NF4_BITS = 4.127
# CUDA context, allocator fragmentation, kernels' workspaces.
GPU_MARGIN = 1.5 * GIB
# Size of each GGUF relative to the 16-bit model (llama.cpp's bits per weight / 16).
GGUF_RATIO = {
    "f32": 2.0,
    "f16": 1.0,
    "bf16": 1.0,
    "q8_0": 0.531,
    "q6_k": 0.41,
    "q5_k_m": 0.356,
    "q5_k_s": 0.344,
    "q5_0": 0.344,
    "q5_1": 0.375,
    "q4_k_m": 0.303,
    "q4_k_s": 0.289,
    "q4_0": 0.281,
    "q4_1": 0.312,
    "q3_k_l": 0.269,
    "q3_k_m": 0.244,
    "q3_k_s": 0.216,
    "q2_k": 0.163,
}
# Memory of common GPUs (GiB), for `compute.gpu: a100-80gb` style names.
GPUS = {
    "t4": 16,
    "v100": 16,
    "v100-32gb": 32,
    "a10": 24,
    "a10g": 24,
    "l4": 24,
    "rtx3090": 24,
    "rtx4090": 24,
    "rtx5090": 32,
    "a6000": 48,
    "l40s": 48,
    "a100": 80,
    "a100-40gb": 40,
    "a100-80gb": 80,
    "h100": 80,
    "h200": 141,
    "b200": 180,
}


@dataclass
class Memory:
    """Bytes one device holds while training."""

    weights: float
    trained_state: float  # gradients and optimizer states (and fp32 master weights)
    activations: float
    logits: float
    margin: float

    @property
    def total(self) -> float:
        return self.weights + self.trained_state + self.activations + self.logits + self.margin


def parameter_memory(
    shape: ModelShape, method: str, trainable: int, devices: int, sharding: str
) -> tuple[float, float]:
    """(weights, trained state) bytes per device. ``sharding``: none, zero1, zero2, zero3/fsdp."""
    total = shape.parameters()
    linear = shape.linear_parameters()
    if method == "qlora":
        weights = linear * NF4_BITS / 8 + (total - linear) * 2
    elif method == "lora-8bit":
        weights = linear * 1.0 + (total - linear) * 2
    else:
        weights = total * 2.0
    if method == "full":
        grads, optimizer = trainable * 2.0, trainable * 12.0
    else:
        grads, optimizer = trainable * 4.0, trainable * 12.0  # fp32 adapter, its grad, m and v
    n = max(1, devices)
    if sharding in ("zero1", "zero2", "zero3"):
        optimizer /= n
    if sharding in ("zero2", "zero3"):
        grads /= n
    if sharding == "zero3":
        weights /= n
    return weights, grads + optimizer


def activation_memory(shape: ModelShape, batch: int, seq_len: int, checkpointing: bool) -> float:
    """Bytes of activations kept for the backward pass (16-bit, memory-efficient attention)."""
    tokens = batch * seq_len
    per_block = (8 * shape.hidden + 2 * shape.kv_width + 4 * shape.intermediate) * 2
    if checkpointing:
        return tokens * (shape.layers * shape.hidden * 2 + per_block)
    return tokens * shape.layers * per_block


def logits_memory(shape: ModelShape, batch: int, seq_len: int) -> float:
    return batch * seq_len * shape.vocab * (2 + 4)


def lora_parameters(shape: ModelShape, r: int, targets: Any) -> int:
    """Trainable parameters of a LoRA of rank ``r`` on the named linear layers (or all)."""
    shapes = shape.linear_shapes()
    names = list(shapes) if targets == "all_linear" else [t for t in targets if t in shapes]
    return shape.layers * sum(r * (shapes[n][0] + shapes[n][1]) for n in names)


def detected_gpu() -> tuple[str, float] | None:
    """The first CUDA device's name and memory in bytes (nvidia-smi), or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        name, mib = out.splitlines()[0].rsplit(",", 1)
        return name.strip(), float(mib) * 1024**2
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def named_gpu(name: str) -> float | None:
    """Bytes of memory of ``compute.gpu``: a name from ``GPUS`` or a size such as ``24GB``."""
    text = re.sub(r"[\s_]+", "-", name.strip().lower())
    match = re.fullmatch(r"(\d+(?:\.\d+)?)-?g(?:i)?b", text)
    if match:
        return float(match.group(1)) * GIB
    text = text.removeprefix("nvidia-").removeprefix("geforce-")
    gib = GPUS.get(text) or GPUS.get(text.replace("-", ""))
    return gib * GIB if gib else None


@dataclass
class Estimate:
    base: str
    shape_source: str
    parameters: int
    trainable: int
    method: str
    devices: int
    sharding: str
    checkpointing: bool
    memory: dict[str, float]
    gpu: str | None
    gpu_bytes: float | None
    fits: bool | None
    advice: list[str] = field(default_factory=list)
    disk: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The estimate as `recipe plan` prints it."""
        gib = {k: v / GIB for k, v in self.memory.items()}
        out = [
            f"base: {self.parameters / 1e9:.2f}B parameters ({self.shape_source})",
            f"method: {self.method}, trainable {self.trainable:,} parameters "
            f"({100 * self.trainable / self.parameters:.2f}%) on {self.devices} device(s)"
            + (f", sharding {self.sharding}" if self.sharding != "none" else ""),
            f"memory per device: {gib['total']:.1f} GiB (weights {gib['weights']:.1f}, "
            f"gradients+optimizer {gib['trained_state']:.1f}, activations {gib['activations']:.1f}"
            f"{' with gradient checkpointing' if self.checkpointing else ''}, "
            f"logits {gib['logits']:.1f}, margin {gib['margin']:.1f})",
        ]
        if self.gpu_bytes:
            verdict = "fits" if self.fits else "DOES NOT FIT"
            out.append(f"{verdict} on {self.gpu} ({self.gpu_bytes / GIB:.0f} GiB)")
        out += [f"to fit: {a}" for a in self.advice]
        if self.disk:
            parts = ", ".join(f"{k} {v / GIB:.1f} GiB" for k, v in self.disk.items())
            out.append(f"disk: {parts}")
        return out


def method_of(recipe: Recipe, cuda: bool) -> str:
    quant = recipe.model.quantization
    if not recipe.lora.enabled:
        return "full"
    if quant == "4bit" and (cuda or not recipe.model.cpu_fallback):
        return "qlora"
    if quant == "8bit" and cuda:
        return "lora-8bit"
    return "lora"


METHOD_NAMES = {
    "full": "full fine-tune",
    "qlora": "QLoRA (4-bit base)",
    "lora-8bit": "LoRA on an 8-bit base",
    "lora": "LoRA (16-bit base)",
}


def sharding_of(recipe: Recipe) -> str:
    compute = recipe.compute
    if compute.strategy == "deepspeed":
        return f"zero{compute.zero_stage}"
    if compute.strategy == "fsdp":
        return "zero3"  # FSDP's full shard splits weights, gradients and optimizer states
    return "none"


def devices_of(recipe: Recipe, cuda: bool) -> int:
    if not cuda or recipe.compute.strategy == "single":
        return 1
    return recipe.compute.gpus * getattr(recipe.compute, "nodes", 1)


def target_gpu(recipe: Recipe, *, cuda: bool, detect: bool = True) -> tuple[str, float] | None:
    """(name, bytes) of the GPU to size for: ``compute.gpu`` when named, else the detected one
    (``detect=False`` for pure renderings such as golden files)."""
    if recipe.compute.gpu:
        size = named_gpu(recipe.compute.gpu)
        if size:
            return recipe.compute.gpu, size
    return detected_gpu() if cuda and detect else None


def estimate(recipe: Recipe, *, cuda: bool, detect: bool = True) -> Estimate | None:
    """The estimate for ``recipe`` (None when the base's shape cannot be known offline)."""
    shape = model_shape(recipe.model.base, recipe.model.revision)
    if shape is None:
        return None
    method = method_of(recipe, cuda)
    trainable = trainable_parameters(recipe, shape, method)
    devices = devices_of(recipe, cuda)
    sharding = sharding_of(recipe)
    gpu = target_gpu(recipe, cuda=cuda, detect=detect)
    checkpointing = resolve_checkpointing(recipe, shape, method, trainable, gpu, cuda)
    memory = _memory(recipe, shape, method, trainable, devices, sharding, checkpointing, cuda)
    fits = None if gpu is None else memory.total <= gpu[1]
    result = Estimate(
        base=recipe.model.base,
        shape_source=shape.source,
        parameters=shape.parameters(),
        trainable=trainable,
        method=METHOD_NAMES[method],
        devices=devices,
        sharding=sharding,
        checkpointing=checkpointing,
        memory=asdict(memory) | {"total": memory.total},
        gpu=gpu[0] if gpu else None,
        gpu_bytes=gpu[1] if gpu else None,
        fits=fits,
        disk=disk_needed(recipe, shape),
    )
    if fits is False:
        result.advice = advice(recipe, shape, method, trainable, devices, sharding, gpu, cuda)
    return result


def trainable_parameters(recipe: Recipe, shape: ModelShape, method: str) -> int:
    if method == "full":
        return shape.parameters()
    return lora_parameters(shape, recipe.lora.r, recipe.lora.target_modules)


def gradient_checkpointing(recipe: Recipe, *, cuda: bool, detect: bool = True) -> bool:
    """The resolved ``train.gradient_checkpointing`` (see ``resolve_checkpointing``)."""
    if recipe.train.gradient_checkpointing != "auto":
        return bool(recipe.train.gradient_checkpointing)
    if not cuda:
        return resolve_checkpointing(recipe, None, None, 0, None, cuda)  # off on CPU
    shape = model_shape(recipe.model.base, recipe.model.revision)
    if shape is None:
        return bool(cuda)  # an unknown base on a GPU: the safe side
    method = method_of(recipe, cuda)
    gpu = target_gpu(recipe, cuda=cuda, detect=detect)
    trainable = trainable_parameters(recipe, shape, method)
    return resolve_checkpointing(recipe, shape, method, trainable, gpu, cuda)


def _memory(recipe, shape, method, trainable, devices, sharding, checkpointing, cuda) -> Memory:
    weights, state = parameter_memory(shape, method, trainable, devices, sharding)
    batch, seq = recipe.train.batch_size, recipe.train.seq_len
    return Memory(
        weights=weights,
        trained_state=state,
        activations=activation_memory(shape, batch, seq, checkpointing),
        logits=logits_memory(shape, batch, seq),
        margin=GPU_MARGIN if cuda else 0.0,
    )


def resolve_checkpointing(recipe, shape, method, trainable, gpu, cuda) -> bool:
    """``train.gradient_checkpointing``: as set, or (``auto``) on where the run would not fit
    without it — and, on a GPU of unknown size, for bases of 3B parameters or more, as the field's
    own QLoRA and LoRA examples do at that size. Off on CPU, where the tiny models train."""
    wanted = recipe.train.gradient_checkpointing
    if wanted != "auto":
        return bool(wanted)
    if not cuda:
        return False
    if gpu is None:
        return shape.parameters() >= 3e9
    devices, sharding = devices_of(recipe, cuda), sharding_of(recipe)
    without = _memory(recipe, shape, method, trainable, devices, sharding, False, True)
    return without.total > gpu[1]


def advice(recipe, shape, method, trainable, devices, sharding, gpu, cuda) -> list[str]:
    """What to change so the run fits, each with the memory it would need."""
    tips = []

    def need(**changes: Any) -> float:
        m = changes.get("method", method)
        t = changes.get("trainable", trainable)
        weights, state = parameter_memory(
            shape, m, t, changes.get("devices", devices), changes.get("sharding", sharding)
        )
        batch = changes.get("batch", recipe.train.batch_size)
        seq = changes.get("seq", recipe.train.seq_len)
        ckpt = changes.get("ckpt", True)
        return (
            weights
            + state
            + activation_memory(shape, batch, seq, ckpt)
            + logits_memory(shape, batch, seq)
            + GPU_MARGIN
        ) / GIB

    if recipe.train.gradient_checkpointing is False:
        tips.append(f"train.gradient_checkpointing: true ({need():.1f} GiB)")
    if method in ("lora", "lora-8bit") and shape.parameters() >= 1e9:
        tips.append(f"model.quantization: 4bit (QLoRA: {need(method='qlora'):.1f} GiB)")
    if recipe.train.batch_size > 1:
        tips.append(
            f"train.batch_size: 1 with gradient_accumulation_steps x{recipe.train.batch_size} "
            f"({need(batch=1):.1f} GiB)"
        )
    if recipe.train.seq_len > 1024:
        tips.append(f"train.seq_len: 1024 ({need(seq=1024):.1f} GiB)")
    if method == "full" and sharding != "zero3":
        tips.append(
            "compute.strategy: fsdp (or deepspeed with zero_stage 3) over more GPUs, e.g. 8: "
            f"{need(devices=8, sharding='zero3'):.1f} GiB each"
        )
    return tips


def disk_needed(recipe: Recipe, shape: ModelShape) -> dict[str, float]:
    """Bytes of the merged model and of each GGUF the recipe exports."""
    base = shape.parameters() * 2.0
    disk: dict[str, float] = {}
    if recipe.exports("merge") or recipe.exports("gguf"):
        disk["merged"] = base
    for target in recipe.exports("gguf"):
        for kind in target.produces():
            disk[f"gguf {kind}"] = base * GGUF_RATIO.get(kind, 0.6)
    return disk


@dataclass
class Steps:
    train_examples: int | None
    examples_source: str  # "the data stage's split", "records in the sources (before filters)"
    steps_per_epoch: int | None
    total_steps: int | None
    tokens: int | None = None  # training tokens per epoch, when the data stage counted them

    def lines(self) -> list[str]:
        if self.train_examples is None:
            return [f"examples: {self.examples_source}"]
        out = [f"training examples: {self.train_examples:,} ({self.examples_source})"]
        if self.tokens:
            out.append(f"training tokens per epoch: about {self.tokens:,}")
        out.append(
            f"steps: {self.steps_per_epoch:,} per epoch, {self.total_steps:,} in all"
            if self.steps_per_epoch
            else "steps: unknown"
        )
        return out


def record_count(recipe: Recipe) -> int | None:
    """Records in the recipe's record sources, read cheaply, times the train share (None when a
    source makes examples only by extraction: a repository or docs)."""
    from pathlib import Path

    from runner.data.reading import iter_json_records
    from runner.data.registries import SOURCES, load_all

    load_all()
    total = 0
    for index, options in enumerate(recipe.sources):
        source = SOURCES.get(options.type)(options, options.name or f"{options.type}{index}")
        if not source.records or options.type == "hf_dataset":
            return None
        for task in source.tasks():
            records = iter_json_records(Path(task), "plan", task)
            total += sum(1 for item in records if isinstance(item, tuple))
    return round(total * recipe.split.train)


def steps(recipe: Recipe, *, cuda: bool, data_report: dict[str, Any] | None) -> Steps:
    """Examples and optimizer steps: from the data stage when it ran, else from the sources."""
    tokens = None
    if data_report is not None:
        examples = (data_report.get("split") or {}).get("written", {}).get("train")
        source = "the data stage's train split"
        mean = ((data_report.get("tokens") or {}).get("train") or {}).get("mean")
        tokens = round(mean * examples) if mean and examples else None
    else:
        examples = record_count(recipe)
        source = (
            "records in the sources times the train share, before filters"
            if examples is not None
            else "known once the data stage has run (`recipe data RECIPE`, quick next to training)"
        )
    if examples is None:
        return Steps(None, source, None, None)
    per_step = (
        recipe.train.batch_size
        * recipe.train.gradient_accumulation_steps
        * devices_of(recipe, cuda)
    )
    per_epoch = max(1, -(-examples // per_step))
    total = recipe.train.max_steps or int(per_epoch * recipe.train.epochs + 0.999)
    return Steps(examples, source, per_epoch, total, tokens)
