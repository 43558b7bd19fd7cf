"""The LLM in the worker: loading it safely, and answering a chat with one seeded sample per seed.

Loading: `tiny`, a local folder or a hub id (cache first, the hub only where allowed: generation's
hub.py), safetensors only, never remote code; a model that is not a causal LM is BadInput.

Sampling: the rows of a batch share the prompt, and each row draws its tokens from a torch
generator of its own, seeded by its answer's seed, so answer k of a group depends on (run seed,
group, k) and not on which rows share its batch (up to the float kernels' batch effects). This is
done by a logits processor that samples (temperature, top-p) and leaves only the drawn token
finite, so greedy decoding takes it: the rest of `generate` (cache, stopping) stays the library's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ....core.errors import setting
from ....prompting.llm_source import DEFAULT_LLM, TINY_LLM, is_local
from ...errors import BadInput
from ...hub import from_hub, one_line
from .tiny import tiny_llm_path

Progress = Callable[[str], None]


def _check_causal(config: Any, spec: str) -> None:
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise BadInput(
            f"{setting('llm')} {spec}: not a causal language model (model_type {getattr(config, 'model_type', '?')!r}); "
            f"give an instruction-tuned causal LM such as {DEFAULT_LLM}"
        )


def load_llm(
    spec: str, device: torch.device, dtype: torch.dtype, cache_dir: str | None, progress: Progress
) -> tuple[Any, Any, str]:
    """(model, tokenizer, a description) of `--llm` on `device`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if spec == TINY_LLM:
        source, hub = str(tiny_llm_path()), False
    elif is_local(spec):
        source, hub = str(Path(spec).expanduser()), False
    else:
        source, hub = spec, True
    common: dict[str, Any] = {"trust_remote_code": False}
    if hub:
        common["cache_dir"] = cache_dir

    def load(local: bool) -> tuple[Any, Any]:
        kwargs = {**common, "local_files_only": local} if hub else common
        config = AutoConfig.from_pretrained(source, **kwargs)
        _check_causal(config, spec)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, use_safetensors=True, **kwargs)
        return model, tokenizer

    try:
        if hub:
            model, tokenizer = from_hub(spec, load, cache_dir, progress)
        else:
            model, tokenizer = load(True)
    except (BadInput, KeyboardInterrupt):
        raise
    except OSError as err:
        if hub:
            raise
        raise BadInput(f"{setting('llm')} {spec}: cannot load it ({one_line(err)})") from None
    except (ValueError, KeyError) as err:
        raise BadInput(f"{setting('llm')} {spec}: cannot load it ({one_line(err)})") from None
    model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, f"{spec} ({type(model).__name__}, {dtype}, {device})"


class SeededSampler:
    """A logits processor: each row samples its next token from its own generator (see the module
    docstring) and every other token gets -inf."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float) -> None:
        self.generators = [torch.Generator().manual_seed(int(s) % (2**63)) for s in seeds]
        self.temperature = max(float(temperature), 1e-5)
        self.top_p = float(top_p)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1).cpu()
        ordered, index = probs.sort(dim=-1, descending=True)
        ordered[(ordered.cumsum(dim=-1) - ordered) > self.top_p] = 0.0
        out = torch.full_like(scores, float("-inf"))
        for row, generator in enumerate(self.generators):
            pick = torch.multinomial(ordered[row] / ordered[row].sum(), 1, generator=generator)
            out[row, index[row, pick].to(out.device)] = 0.0
        return out


def prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat as the model's own template writes it (plain text for a model without one)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    text = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)
    return text + "\n\nASSISTANT:"


def make_answer(
    model: Any,
    tokenizer: Any,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    counts: dict[str, int] | None = None,
) -> Callable[[list[dict[str, str]], list[int]], list[str]]:
    """The writer's `answer(messages, seeds)` for this model: one sampled answer per seed, in one
    batch. `counts`, when given, adds up the answers and the tokens generated (for benchmarks)."""
    from transformers import GenerationConfig, LogitsProcessorList

    device = next(model.parameters()).device

    def answer(messages: list[dict[str, str]], seeds: list[int]) -> list[str]:
        text = prompt_text(tokenizer, messages)
        encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        ids = encoded["input_ids"].to(device).repeat(len(seeds), 1)
        mask = encoded["attention_mask"].to(device).repeat(len(seeds), 1)
        config = GenerationConfig(
            max_new_tokens=int(max_new_tokens),
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([SeededSampler(seeds, temperature, top_p)]),
            )
        new = out[:, ids.shape[1] :]
        if counts is not None:
            counts["answers"] = counts.get("answers", 0) + len(seeds)
            counts["tokens"] = counts.get("tokens", 0) + int((new != tokenizer.pad_token_id).sum())
        return [tokenizer.decode(row, skip_special_tokens=True) for row in new]

    return answer


def quiet_transformers() -> None:
    """No progress bars or advice in the worker's log beyond warnings."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
