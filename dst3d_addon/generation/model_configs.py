"""The component configs shipped for single-file checkpoints, assembled into a local diffusers folder.

diffusers' `from_single_file` reads each component's config (and the CLIP tokenizer's vocabulary)
from a diffusers folder, and without one it reaches for the hub. dst3d ships those configs under
`configs/<family>/` (copied from the published stable-diffusion-v1-5, control_v11p_sd15_canny,
stable-diffusion-xl-base-1.0 and controlnet-canny-sdxl-1.0 repositories) and OpenAI CLIP's BPE
merges (`configs/clip/`, from the MIT-licensed open_clip_torch package). At first use they are
assembled, with the tokenizer's vocab.json / merges.txt derived from the merges, into a folder of
the dst3d cache, so single-file loading works fully offline.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

from ..core.files import build_folder_atomically
from .worker_env import dst3d_cache_dir

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
FAMILIES = ("sd15", "sdxl")
#: Bump when a shipped config changes: a new version assembles into a new cache folder.
CONFIGS_VERSION = 1
_MARKER = "dst3d_configs.json"
_CLIP_MERGES = CONFIGS_DIR / "clip" / "bpe_simple_vocab_16e6.txt.gz"
#: CLIP keeps the first 49152 - 256 - 2 merges of its BPE file (the rest are unused).
CLIP_MERGE_COUNT = 49152 - 256 - 2
CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's / GPT-2's map of the 256 bytes to printable unicode symbols (in CLIP's vocab order)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes, strict=True)}


def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """OpenAI CLIP's vocabulary (49408 tokens) and merges, built the way CLIP builds them.

    The 256 byte symbols, the same with `</w>`, each merge joined, then the two specials; the
    merges are the BPE file's lines after its header.
    """
    lines = gzip.decompress(_CLIP_MERGES.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : 1 + CLIP_MERGE_COUNT]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split(" ")) for m in merges]
    tokens += list(CLIP_SPECIALS)
    return {t: i for i, t in enumerate(tokens)}, merges


def _write_tokenizer_files(folder: Path, vocab: dict[str, int], merges: list[str]) -> None:
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def family_config_dir(family: str, cache_dir: str | Path | None = None) -> Path:
    """A local diffusers config folder for `family` ("sd15" or "sdxl"), assembled once into the cache.

    It holds model_index.json, every component's config, the tokenizers' vocab.json / merges.txt, and
    the family's ControlNet config in `controlnet/`; no weights.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r} (expected one of {', '.join(FAMILIES)})")
    root = Path(cache_dir) if cache_dir is not None else dst3d_cache_dir()
    final = root / "configs" / f"{family}-v{CONFIGS_VERSION}"
    if (final / _MARKER).is_file():
        return final

    def build(folder: Path) -> None:
        shutil.copytree(CONFIGS_DIR / family, folder, dirs_exist_ok=True)
        vocab, merges = clip_vocab_and_merges()
        for tokenizer in sorted(folder.glob("tokenizer*")):
            _write_tokenizer_files(tokenizer, vocab, merges)
        (folder / _MARKER).write_text(json.dumps({"family": family, "version": CONFIGS_VERSION}) + "\n")

    return build_folder_atomically(final, build, _MARKER)
