"""Expand a recipe into an Axolotl config: a pure function, pinned by golden files.

Every value comes from the resolved recipe or from the keyword arguments; nothing is read from
disk or from the machine here, so ``recipe plan`` and the train stage see the same config and a
golden test can pin it. The caller passes what only the run can know (where the base model and
the data are, whether CUDA is present, how many examples there are, the loaded chat template).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field

from runner.recipe.fields import Section, Seed
from runner.train.labels import eos_override
from runner.train.launch import processes, ray_train_keys

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

# Files the train stage hands to Axolotl (written from the data stage's canonical JSONL).
TRAIN_FILE = "train.jsonl"
VAL_FILE = "val.jsonl"
# Fill-in-the-middle rows as prompt/middle segments (``{"id", "segments"}``), trained in the same run.
FIM_TRAIN_FILE = "train.fim.jsonl"
FIM_VAL_FILE = "val.fim.jsonl"
# Per-message flag used for `prompt.train_on: last_assistant` (Axolotl's message_field_training).
TRAIN_FLAG = "train"

# With fewer training examples than this, `sample_packing: auto` leaves packing off: packing a
# small set leaves too few batches, and Axolotl fails with zero-length loaders or "eval split too
# small" (axolotl-ai-cloud/axolotl#999, #1644).
PACKING_MIN_EXAMPLES = 256
# Below this many examples, Axolotl tokenizes in its own process: starting a worker pool per
# dataset map costs more than the work (about a minute for the 40-example quickstart on 2 cores).
# The value written is 0, not 1: `datasets` (4.x) starts a pool for any num_proc >= 1, and each
# pool pickles the tokenizer to its one worker (3 s per map for Qwen's 151k-token vocabulary);
# 0 maps in-process (Axolotl fills its default only when the key is absent or null).
SINGLE_PROCESS_TOKENIZE_BELOW = 5000
IN_PROCESS = 0
# Axolotl saves a checkpoint after every epoch unless told otherwise; a run of many short
# epochs (the quickstart: 10 epochs of 10 steps, about 1 s per save on the tiny model) then
# spends more on checkpoints than resuming needs. Without `train.save_steps`, such a run saves
# about this many times instead, and never more often than once an epoch.
CHECKPOINTS = 4


class LoraSection(Section):
    """`lora:`: the adapter trained on top of the base (off: a full fine-tune)."""

    enabled: bool = True
    r: int = Field(16, ge=1)
    """Rank of the adapter's matrices."""
    alpha: int = Field(32, ge=1)
    """Scaling of the adapter's update (alpha / r)."""
    dropout: float = Field(0.05, ge=0, le=1)
    target_modules: Literal["all_linear"] | tuple[str, ...] = "all_linear"
    """Module names, or `all_linear`."""


class TrainSection(Section):
    """`train:`: the optimisation, as Axolotl runs it."""

    epochs: int | float = Field(3, gt=0)
    """Passes over the training split (a fraction runs part of one)."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps (overrides epochs)."""
    learning_rate: float = Field(0.0002, gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    batch_size: int = Field(1, ge=1)
    """Micro batch size per device."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    seq_len: int = Field(2048, ge=32)
    """Longest example in tokens; longer ones are dropped by Axolotl (and counted)."""
    sample_packing: Literal["auto", True, False] = "auto"
    """`auto` packs only when the data is large enough."""
    optimizer: str = "adamw_torch"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    gradient_checkpointing: Literal["auto", True, False] = "auto"
    """`auto` turns it on where the memory estimate says the run would not fit without it (and on
    a GPU of unknown size for bases of 3B parameters or more); see `recipe plan`."""
    seed: Seed = 42
    save_steps: int | None = Field(None, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    logging_steps: int = Field(1, ge=1)
    early_stopping_patience: int | None = Field(None, ge=1)


ROLES_TO_TRAIN = {
    "assistant": ["assistant"],
    "last_assistant": ["assistant"],
    "all": ["system", "user", "assistant"],
}


def packing_decision(
    recipe: Recipe, *, cuda: bool, train_examples: int | None
) -> tuple[bool, str | None]:
    """Whether to pack, and a note for the plan when ``auto`` turned it off."""
    wanted = recipe.train.sample_packing
    if wanted == "auto":
        if not cuda:
            return False, "sample packing off: no CUDA device (packing needs GPU attention kernels)"
        if train_examples is None:
            return True, (
                f"sample packing on if the data has at least {PACKING_MIN_EXAMPLES} training "
                "examples (decided when the data is built)"
            )
        if train_examples < PACKING_MIN_EXAMPLES:
            return False, (
                f"sample packing off: {train_examples} training examples is too few to pack "
                f"(auto packs from {PACKING_MIN_EXAMPLES}; axolotl#999, #1644)"
            )
        return True, None
    return bool(wanted), None


def _dataset(path: str, recipe: Recipe) -> dict[str, Any]:
    """One Axolotl dataset entry; the chat template comes from the top-level keys."""
    train_on = recipe.prompt.train_on
    entry: dict[str, Any] = {
        "path": path,
        "ds_type": "json",
        "type": "chat_template",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
        "roles_to_train": list(ROLES_TO_TRAIN[train_on]),
        # Train the end-of-turn token of every trained turn, or the model never learns to stop
        # (axolotl-ai-cloud/axolotl#1608, PR #3756).
        "train_on_eos": "turn",
        "train_on_eot": "turn",
    }
    if train_on == "last_assistant":
        entry["message_field_training"] = TRAIN_FLAG
    return entry


def _infill_dataset(path: str) -> dict[str, Any]:
    """An Axolotl dataset entry of fill-in-the-middle rows: type ``input_output`` tokenizes each
    segment as written (no BOS or eos added: the rows carry them) and trains the segments
    labelled true, the middle and its end token (prompt_strategies/input_output.py); each entry
    of ``datasets:`` is tokenized by its own type and the results are concatenated
    (utils/data/sft.py ``_load_tokenized_prepared_datasets``, ``merge_datasets``), so infill
    and chat examples train in one run."""
    return {"path": path, "ds_type": "json", "type": "input_output"}


def _datasets(
    dataset_dir: str, recipe: Recipe, chat: bool, fim: bool, chat_file: str, fim_file: str
) -> list[dict[str, Any]]:
    entries = [_dataset(f"{dataset_dir}/{chat_file}", recipe)] if chat else []
    if fim:
        entries.append(_infill_dataset(f"{dataset_dir}/{fim_file}"))
    return entries


def _precision(recipe: Recipe, cuda: bool) -> dict[str, Any]:
    if not cuda:
        # Axolotl on CPU needs every mixed-precision switch off: bf16/fp16/tf32 "auto" picks
        # CUDA code paths.
        return {"bf16": False, "fp16": False, "tf32": False}
    precision = recipe.compute.precision
    return {
        "auto": {"bf16": "auto", "fp16": False, "tf32": "auto"},
        "bf16": {"bf16": True, "fp16": False, "tf32": "auto"},
        "fp16": {"bf16": False, "fp16": True, "tf32": "auto"},
        "fp32": {"bf16": False, "fp16": False, "tf32": False},
    }[precision]


def _loader(cuda: bool) -> dict[str, Any]:
    # On CPU a data-loader worker process only takes a core from training (and is started
    # again every epoch), and there is no device memory to pin.
    return {} if cuda else {"dataloader_num_workers": 0, "dataloader_pin_memory": False}


def _save_steps(recipe: Recipe, rows: int | None, pack: bool, cuda: bool) -> int | None:
    """``save_steps`` for a run of more than ``CHECKPOINTS`` epochs whose steps are known
    before Axolotl runs (no packing, no max_steps); None leaves Axolotl's per-epoch saves."""
    t = recipe.train
    if t.save_steps is not None or t.max_steps is not None or rows is None or pack:
        return None
    if t.epochs <= CHECKPOINTS:
        return None
    per_step = t.batch_size * t.gradient_accumulation_steps * processes(recipe, cuda=cuda)
    per_epoch = max(1, -(-rows // per_step))
    total = int(per_epoch * t.epochs + 0.999)
    return max(per_epoch, -(-total // CHECKPOINTS))


def _attention(recipe: Recipe, cuda: bool) -> dict[str, Any]:
    wanted = recipe.compute.flash_attention
    if wanted is True:
        return {"attn_implementation": "flash_attention_2"}
    if cuda and wanted == "auto":
        return {"attn_implementation": "sdpa"}
    return {}


def _adapter(recipe: Recipe, *, cuda: bool) -> dict[str, Any]:
    quant = recipe.model.quantization
    lora = recipe.lora
    out: dict[str, Any] = {}
    four_bit = quant == "4bit" and (cuda or not recipe.model.cpu_fallback)
    if four_bit:
        out["load_in_4bit"] = True
    elif quant == "8bit" and cuda:
        out["load_in_8bit"] = True
    if not lora.enabled:
        return out
    out["adapter"] = "qlora" if four_bit else "lora"
    out["lora_r"] = lora.r
    out["lora_alpha"] = lora.alpha
    out["lora_dropout"] = lora.dropout
    targets = lora.target_modules
    if targets == "all_linear":
        out["lora_target_linear"] = True
    else:
        out["lora_target_modules"] = list(targets)
    if not cuda:
        # Axolotl turns on its Triton LoRA kernels by default, and they allocate on `cuda`.
        out.update(
            lora_mlp_kernel=False,
            lora_qkv_kernel=False,
            lora_o_kernel=False,
            lora_embedding_kernel=False,
        )
    return out


def deepspeed_config(zero_stage: int) -> dict[str, Any]:
    """A DeepSpeed ZeRO config whose batch and precision values defer to the trainer ("auto").

    Axolotl 0.19's wheel does not ship its ``deepspeed_configs/*.json`` (``axolotl fetch`` needs
    the network), and its ``deepspeed`` key accepts a dict, so the config is emitted inline.
    """
    zero: dict[str, Any] = {
        "stage": zero_stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
    }
    if zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "wall_clock_breakdown": False,
    }


def _strategy(recipe: Recipe) -> dict[str, Any]:
    strategy = recipe.compute.strategy
    if strategy == "fsdp":
        # The wrapped layer class is left to accelerate, which takes the model's own
        # `_no_split_modules` when none is named.
        return {
            "fsdp_version": 2,
            "fsdp_config": {
                "offload_params": False,
                "state_dict_type": "FULL_STATE_DICT",
                "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "reshard_after_forward": True,
            },
        }
    if strategy == "deepspeed":
        return {"deepspeed": deepspeed_config(recipe.compute.zero_stage)}
    if strategy == "ddp" and recipe.compute.gpus > 1:
        return {"ddp_find_unused_parameters": False}
    return {}


def _training(recipe: Recipe, checkpointing: bool) -> dict[str, Any]:
    t = recipe.train
    out: dict[str, Any] = {
        "num_epochs": t.epochs,
        "micro_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "learning_rate": t.learning_rate,
        "lr_scheduler": t.lr_scheduler,
        "warmup_steps": t.warmup_steps,
        "optimizer": t.optimizer,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "gradient_checkpointing": checkpointing,
        "seed": t.seed,
        "logging_steps": t.logging_steps,
    }
    for key in ("max_steps", "save_steps", "eval_steps", "early_stopping_patience"):
        if getattr(t, key) is not None:
            out[key] = getattr(t, key)
    return out


def render_axolotl_config(
    recipe: Recipe,
    *,
    base_model: str,
    dataset_dir: str,
    output_dir: str,
    cuda: bool,
    template_source: str | None,
    end_of_turn: list[str] | None = None,
    train_examples: int | None = None,
    val_examples: int | None = None,
    pad_token: str | None = None,
    base_eos: str | None = None,
    ray_resources: dict[str, float] | None = None,
    gradient_checkpointing: bool | None = None,
    plugins: list[str] | None = None,
    fim_examples: dict[str, int] | None = None,
    lora_model_dir: str | None = None,
) -> dict[str, Any]:
    """The Axolotl config for ``recipe``, as a plain dict in a stable key order.

    ``template_source`` is the recipe's chat template (Jinja): the same text drives Axolotl's
    tokenization, the tokenizer saved with the adapter, the GGUF and the Modelfile.
    ``end_of_turn`` names the tokens that close a turn, trained on every trained turn.
    ``train_examples``/``val_examples`` are the row counts when the data exists (decide sample
    packing and whether there is a validation set); ``None`` at plan time.
    ``pad_token`` overrides the tokenizer's pad token when it collides with an end token.
    ``base_eos`` is the base tokenizer's eos token (``None`` at plan time): when the end of turn
    differs from it and llama.cpp would not stop on it, the end of turn becomes the eos
    (``runner.train.labels.eos_override``).
    ``ray_resources`` is the Ray target's ``resources_per_worker`` when the run trains on a Ray
    cluster (Axolotl's Ray Train keys, when that spans several workers).
    ``gradient_checkpointing`` is ``train.gradient_checkpointing`` resolved by the memory estimate
    (``runner.train.estimate.gradient_checkpointing``); ``None`` reads an explicit setting only.
    ``plugins`` are Axolotl plugins to load (the train stage's checks run as one).
    ``fim_examples`` counts the fill-in-the-middle rows per split (``train``, ``val``) when the
    data has some: they become a second dataset entry of type ``input_output``.
    ``lora_model_dir`` is the adapter to keep training (``continue_from.mode: same_adapter``);
    for the other modes ``base_model`` is the merged parent.
    Keys under the recipe's ``axolotl:`` section are merged last and win.
    """
    cfg: dict[str, Any] = {"base_model": base_model}
    if plugins:
        cfg["plugins"] = list(plugins)
    if recipe.model.revision:
        cfg["revision_of_model"] = recipe.model.revision
    if recipe.model.trust_remote_code:
        cfg["trust_remote_code"] = True
    cfg.update(_adapter(recipe, cuda=cuda))
    if lora_model_dir is not None:
        # Axolotl loads it with PeftModel.from_pretrained(is_trainable=True); its saved
        # adapter_config.json wins over lora_r/lora_alpha, which is why the run refuses a
        # `lora:` block that differs from it (runner/train/continue_from.py).
        cfg["lora_model_dir"] = lora_model_dir

    source = template_source
    cfg["chat_template"] = "jinja" if source is not None else "tokenizer_default"
    if source is not None:
        cfg["chat_template_jinja"] = source
    if end_of_turn:
        cfg["eot_tokens"] = list(end_of_turn)
    special: dict[str, str] = {}
    if pad_token is not None:
        special["pad_token"] = pad_token
    eos = eos_override(end_of_turn[0], base_eos) if end_of_turn and len(end_of_turn) == 1 else None
    if eos is not None:
        special["eos_token"] = eos
    if special:
        cfg["special_tokens"] = special

    fim = fim_examples or {}
    chat_train = train_examples is None or train_examples > 0
    cfg["datasets"] = _datasets(
        dataset_dir, recipe, chat_train, fim.get("train", 0) > 0, TRAIN_FILE, FIM_TRAIN_FILE
    )
    has_val = (val_examples or 0) > 0 if val_examples is not None else recipe.split.val > 0
    if has_val or fim.get("val", 0) > 0:
        cfg["test_datasets"] = _datasets(
            dataset_dir, recipe, has_val, fim.get("val", 0) > 0, VAL_FILE, FIM_VAL_FILE
        )
    else:
        cfg["val_set_size"] = 0.0
    rows = None if train_examples is None else train_examples + fim.get("train", 0)
    if rows is not None and rows < SINGLE_PROCESS_TOKENIZE_BELOW:
        cfg["dataset_num_proc"] = IN_PROCESS
    cfg["dataset_prepared_path"] = f"{output_dir}/prepared"
    cfg["output_dir"] = output_dir

    cfg["sequence_len"] = recipe.train.seq_len
    pack, _ = packing_decision(recipe, cuda=cuda, train_examples=rows)
    cfg["sample_packing"] = pack
    if pack:
        cfg["pad_to_sequence_len"] = True
        cfg["eval_sample_packing"] = False  # small eval sets break packing (axolotl#999)
    cfg["excess_length_strategy"] = "drop"

    if gradient_checkpointing is None:
        gradient_checkpointing = recipe.train.gradient_checkpointing is True
    cfg.update(_training(recipe, gradient_checkpointing))
    # The runner owns resume: an interrupted train stage keeps its output folder, and Axolotl
    # continues from the newest checkpoint-* in it (axolotl#1134, #2633).
    cfg["auto_resume_from_checkpoints"] = True
    cfg["save_total_limit"] = 2
    save_steps = _save_steps(recipe, rows, pack, cuda)
    if save_steps is not None:
        cfg["save_steps"] = save_steps
    cfg.update(_precision(recipe, cuda))
    cfg.update(_loader(cuda))
    cfg.update(_attention(recipe, cuda))
    cfg.update(_strategy(recipe))
    if ray_resources is not None:
        cfg.update(ray_train_keys(recipe, ray_resources))

    cfg.update(copy.deepcopy(recipe.axolotl))
    return cfg


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # Multi-line strings (the chat template) as literal blocks, readable in the run folder.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_NoAliasDumper.add_representer(str, _str)


def dump_yaml(cfg: dict[str, Any]) -> str:
    """The config as YAML, in its own key order, without anchors (readable, diffable)."""
    return yaml.dump(
        dict(cfg), Dumper=_NoAliasDumper, sort_keys=False, width=4096, allow_unicode=True
    )


def render_notes(recipe: Recipe, *, cuda: bool, train_examples: int | None = None) -> list[str]:
    """What the expansion decided on the user's behalf, in the user's key names."""
    notes = []
    _, packing_note = packing_decision(recipe, cuda=cuda, train_examples=train_examples)
    if packing_note:
        notes.append(packing_note)
    if recipe.model.quantization == "4bit" and not cuda:
        if recipe.model.cpu_fallback:
            notes.append(
                "model.quantization 4bit: no CUDA, training a 16-bit LoRA (model.cpu_fallback)"
            )
        else:
            notes.append(
                "model.quantization 4bit needs CUDA (bitsandbytes); this machine has none, so the "
                "train stage will refuse to start (set model.cpu_fallback: true for a 16-bit LoRA)"
            )
    if recipe.model.quantization == "8bit" and not cuda:
        notes.append("model.quantization 8bit: no CUDA, training a 16-bit LoRA")
    if not cuda:
        notes.append("no CUDA: bf16/fp16/tf32 and Axolotl's Triton LoRA kernels are off")
        if recipe.compute.precision not in ("auto", "fp32"):
            notes.append(f"compute.precision {recipe.compute.precision} ignored on CPU")
    if recipe.compute.strategy == "single" and recipe.compute.gpus > 1:
        notes.append("compute.strategy single: one process, compute.gpus ignored")
    passthrough = recipe.axolotl
    if passthrough:
        notes.append(
            f"axolotl pass-through keys override the expansion: {', '.join(sorted(passthrough))}"
        )
    return notes
