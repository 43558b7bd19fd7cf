"""Which LLM the prompt writer runs, checked without torch before a worker starts.

`--llm` is a hub id (default Qwen/Qwen2.5-1.5B-Instruct, small, ungated, instruction-tuned), a local
folder saved with `save_pretrained`, or `tiny` (a random-weight causal LM built locally: tests and
smoke runs; its text is noise). Weights load as safetensors only and never with remote code. A
local folder must hold a causal LM's config.json and .safetensors weights; a hub id that is not in
the cache while the hub may not be used (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) is named with its
download command within a second, as the generate stage names its models.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import setting
from ..core.prompts import PromptError
from ..generation.errors import MissingWeights
from ..generation.hub import HUB_ID, hf_cache_dir, missing_weights
from ..generation.worker_env import hub_offline

LLM = setting("llm")
DEFAULT_LLM = "Qwen/Qwen2.5-1.5B-Instruct"
TINY_LLM = "tiny"
#: Architectures a causal LM's config.json names (LlamaForCausalLM, GPT2LMHeadModel, ...).
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def is_local(spec: str) -> bool:
    """Whether `--llm` names a local folder rather than a hub id (or `tiny`)."""
    return spec != TINY_LLM and (Path(spec).expanduser().exists() or not HUB_ID.match(spec))


def check_llm_folder(folder: Path, spec: str) -> None:
    """PromptError naming `--llm` unless `folder` holds a causal LM in safetensors."""
    if not folder.is_dir():
        raise PromptError(
            f"{LLM} {spec}: not a folder (give a hub id such as {DEFAULT_LLM}, or a save_pretrained folder)"
        )
    config = folder / "config.json"
    if not config.is_file():
        raise PromptError(f"{LLM} {spec}: no config.json; not a transformers model folder")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PromptError(f"{LLM} {spec}: config.json cannot be read ({err})") from None
    architectures = data.get("architectures") if isinstance(data, dict) else None
    if not isinstance(architectures, list) or not any(
        isinstance(a, str) and a.endswith(CAUSAL_SUFFIXES) for a in architectures
    ):
        kind = (data.get("model_type") if isinstance(data, dict) else None) or "unknown"
        raise PromptError(
            f"{LLM} {spec}: not a causal language model (config.json: model_type {kind!r}, architectures "
            f"{architectures!r}); give an instruction-tuned causal LM such as {DEFAULT_LLM}"
        )
    if not any(folder.glob("*.safetensors")):
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        hint = f" (it has {', '.join(sorted(pickles)[:2])}: pickle files are never loaded)" if pickles else ""
        raise PromptError(f"{LLM} {spec}: no .safetensors weights{hint}")


def hub_cached(repo_id: str, cache_dir: str | None = None) -> bool:
    """Whether a hub model's snapshot (config.json at least) is in the Hugging Face cache."""
    folder = hf_cache_dir(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return any(folder.glob("*/config.json"))


def check_llm(spec: str, cache_dir: str | None = None) -> MissingWeights | None:
    """Check `--llm` before any worker starts: PromptError for a folder that is no causal LM; the
    MissingWeights error (returned, not raised) for a hub id the hub cannot give us now."""
    if spec == TINY_LLM:
        return None
    if is_local(spec):
        check_llm_folder(Path(spec).expanduser(), spec)
        return None
    if not hub_cached(spec, cache_dir) and hub_offline():
        return missing_weights(spec, cache_dir, "HF_HUB_OFFLINE is set")
    return None


def llm_here(spec: str, cache_dir: str | None = None) -> str | None:
    """Why the LLM writer should not be the default now (None when its model is at hand: `tiny`, a
    local folder, or a hub id in the cache)."""
    if spec == TINY_LLM or is_local(spec) or hub_cached(spec, cache_dir):
        return None
    return f"{spec} is not in the Hugging Face cache ({hf_cache_dir(cache_dir)})"


__all__ = [
    "DEFAULT_LLM",
    "LLM",
    "TINY_LLM",
    "MissingWeights",
    "check_llm",
    "hub_cached",
    "is_local",
    "llm_here",
]
