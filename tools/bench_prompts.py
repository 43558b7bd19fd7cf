"""Benchmark of the prompt writers: diversity at N prompts per class, and speed.

    python -m tools.bench_prompts                        # template writer, 20 classes, N = 100
    python -m tools.bench_prompts --llm tiny --n 10      # + the LLM writer (tiny: noise, speed of the plumbing)
    python -m tools.bench_prompts --llm Qwen/Qwen2.5-1.5B-Instruct --device cuda --classes 5 --n 50

For each class it prints the prompts kept, distinct-1, distinct-2 and the mean pairwise Jaccard
similarity of their word sets (prompting/diversity.py), then the mean and the worst over the
classes, and PASS/FAIL against the template writer's targets at N = 100: distinct-2 >= 0.5 and
mean Jaccard <= 0.2 for every class. With --llm it also writes with the LLM in this process and
prints answers/s, generated tokens/s and kept prompts/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from dst3d_addon.core.prompts import PAPER_SUFFIX
from dst3d_addon.prompting.diversity import Diversity, diversity
from dst3d_addon.prompting.targets import target_for
from dst3d_addon.prompting.templates import TemplateWriter, load_words

#: 20 classes of 3D-DST's list across the families (vehicles, aircraft, boats, furniture, animals, objects).
CLASSES = (
    "n02690373",
    "n02958343",
    "n03790512",
    "n04468005",
    "n02924116",
    "n04530566",
    "n03001627",
    "n04379243",
    "n04256520",
    "n02818832",
    "n02876657",
    "n03211117",
    "n03467517",
    "n03642806",
    "n02085620",
    "n01530575",
    "n01440764",
    "n02747177",
    "n04037443",
    "n03337140",
)
D2_TARGET, JACCARD_TARGET = 0.5, 0.2


def _row(name: str, d: Diversity, extra: str = "") -> str:
    return f"{name:22s} {d.prompts:5d} {d.distinct_1:7.3f} {d.distinct_2:7.3f} {d.jaccard:8.3f}{extra}"


def _table(rows: list[tuple[str, Diversity]], check: bool) -> bool:
    print(f"{'class':22s} {'kept':>5s} {'dist-1':>7s} {'dist-2':>7s} {'Jaccard':>8s}")
    for name, d in rows:
        print(_row(name, d))
    ds = [d for _, d in rows]
    print(
        f"{'mean':22s} {statistics.mean(d.prompts for d in ds):5.0f} {statistics.mean(d.distinct_1 for d in ds):7.3f} "
        f"{statistics.mean(d.distinct_2 for d in ds):7.3f} {statistics.mean(d.jaccard for d in ds):8.3f}"
    )
    worst_d2, worst_j = min(d.distinct_2 for d in ds), max(d.jaccard for d in ds)
    print(f"{'worst':22s} {'':5s} {'':7s} {worst_d2:7.3f} {worst_j:8.3f}")
    if not check:
        return True
    ok = worst_d2 >= D2_TARGET and worst_j <= JACCARD_TARGET
    print(
        f"{'PASS' if ok else 'FAIL'}: every class distinct-2 >= {D2_TARGET} and Jaccard <= {JACCARD_TARGET}"
    )
    return ok


def bench_templates(classes: list[str], n: int, seed: int) -> bool:
    writer = TemplateWriter(load_words(), seed, PAPER_SUFFIX)
    rows = []
    start = time.perf_counter()
    total = 0
    for synset in classes:
        written = writer.write(target_for(synset, synset, synset), n)
        total += len(written.prompts)
        rows.append((target_for(synset, synset, synset).name, diversity(written.prompts)))
    seconds = time.perf_counter() - start
    print(f"template writer, N = {n}, seed {seed}: {total / seconds:.0f} prompts/s")
    return _table(rows, check=n == 100)


#: A random-weight model of Qwen2.5-1.5B-Instruct's shape (its published config's sizes): the speed of
#: the default model's architecture without its weights (its text is noise, so nothing is kept).
RANDOM_QWEN = "random-qwen2.5-1.5b"


def random_qwen(device, dtype):
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from dst3d_addon.generation.worker.llm.tiny import tiny_llm_path

    config = Qwen2Config(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)  # the library's own random initialisation
    model = model.to(device=device, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_path())  # only the token counts matter here
    params = sum(p.numel() for p in model.parameters()) / 1e9
    return model, tokenizer, f"{RANDOM_QWEN} ({params:.2f}B parameters, random weights, {dtype}, {device})"


def bench_llm(classes: list[str], n: int, args: argparse.Namespace) -> None:
    import torch

    from dst3d_addon.generation.worker.devices import resolve_device
    from dst3d_addon.generation.worker.llm.model import load_llm, make_answer, quiet_transformers
    from dst3d_addon.prompting.llm_template import load_llm_template
    from dst3d_addon.prompting.llm_writer import LlmSettings, LlmWriter

    quiet_transformers()
    device = resolve_device(args.device)
    dtype = torch.float32 if device.type != "cuda" else torch.bfloat16
    start = time.perf_counter()
    if args.llm == RANDOM_QWEN:
        model, tokenizer, description = random_qwen(device, dtype)
    else:
        model, tokenizer, description = load_llm(args.llm, device, dtype, None, print)
    print(f"LLM writer: {description}, loaded in {time.perf_counter() - start:.1f} s")
    settings = LlmSettings(
        model=args.llm, seed=args.seed, suffix=PAPER_SUFFIX, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, max_answers=args.max_answers,
    )  # fmt: skip
    counted = {"answers": 0, "tokens": 0}
    timed = make_answer(
        model, tokenizer, max_new_tokens=settings.max_new_tokens, temperature=0.9, top_p=0.95, counts=counted
    )

    writer = LlmWriter(load_llm_template(), settings)
    rows = []
    kept = 0
    start = time.perf_counter()
    for synset in classes:
        target = target_for(synset, synset, synset)
        written = writer.write(target, n, timed)
        kept += len(written.prompts)
        rows.append((target.name, diversity(written.prompts)))
    seconds = time.perf_counter() - start
    print(
        f"LLM writer, N = {n}: {counted['answers'] / seconds:.2f} answers/s, {counted['tokens'] / seconds:.1f} "
        f"generated tokens/s, {kept / seconds:.2f} kept prompts/s ({kept} kept in {seconds:.1f} s)"
    )
    _table(rows, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="prompts per class (default 100)")
    parser.add_argument("--classes", type=int, default=len(CLASSES), help="how many of the 20 classes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--llm",
        help=f"also bench the LLM writer with this model (hub id, folder, 'tiny', or '{RANDOM_QWEN}')",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--max-answers", type=int, default=None)
    args = parser.parse_args(argv)
    classes = list(CLASSES[: args.classes])
    ok = bench_templates(classes, args.n, args.seed)
    if args.llm:
        print()
        bench_llm(classes, args.n, args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
