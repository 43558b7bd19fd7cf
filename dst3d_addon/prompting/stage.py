"""The `prompts` stage (no torch, no command line): which groups a dataset still needs, and recording
each written group into prompts.jsonl.

A group already in the file with the same settings (writer, its settings, N, keywords) is done and
skipped, so a rerun after a kill writes only what is missing and ends with the same file. A group in
the file with other settings is a conflict: refused unless `allow_mixed`, then rewritten. Groups
are appended as they are finished; `finish` rewrites the file in key order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.dataset import ALLOW_MIXED, ANNOTATIONS, OUT, Dataset, describe_diff, settings_diff
from ..core.errors import DatasetError, SettingError, setting
from ..core.prompt_table import PROMPTS_FILE, PromptGroup, append_groups, read_groups, rewrite_groups
from .diversity import diversity
from .targets import PromptTarget
from .templates import Written

#: Prompts per group at most: more than a dataset can use; a typo otherwise.
MAX_PROMPTS = 10_000
N = setting("n")


def check_n(n: int) -> int:
    """SettingError unless 1 <= n <= MAX_PROMPTS."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SettingError(f"{N} {n!r}: must be a positive number of prompts per group")
    if n > MAX_PROMPTS:
        raise SettingError(f"{N} {n:,}: at most {MAX_PROMPTS:,} prompts per group")
    return n


def group_settings(writer_settings: Mapping[str, Any], n: int, target: PromptTarget) -> dict[str, Any]:
    """What decides a group's prompts: the writer's settings, N and the group's keywords."""
    return {**dict(writer_settings), "n": int(n), "keywords": list(target.keywords)}


def make_group(
    target: PromptTarget, written: Written, writer: str, settings: Mapping[str, Any], suffix: str
) -> PromptGroup:
    """The prompts.jsonl group of a written target, with its figures."""
    return PromptGroup(
        class_key=target.class_key,
        model=target.model,
        prompts=tuple(written.prompts),
        sources=tuple(written.sources),
        negative_prompt=None,
        suffix=suffix,
        name=target.name,
        synset=target.synset,
        writer=writer,
        keywords=target.keywords,
        settings=dict(settings),
        stats=diversity(written.prompts).as_dict(),
        dropped=dict(sorted(written.dropped.items())),
        asked=written.asked,
    )


@dataclass
class PromptsStage:
    """One prompts run over a dataset: what is done, what is pending, and the groups written now."""

    out: Path
    n: int
    writer: str
    writer_settings: dict[str, Any]
    suffix: str
    targets: list[PromptTarget]
    allow_mixed: bool = False
    done: list[PromptTarget] = field(default_factory=list)
    pending: list[PromptTarget] = field(default_factory=list)
    written: list[PromptGroup] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        out: str | os.PathLike,
        n: int,
        writer: str,
        writer_settings: Mapping[str, Any],
        suffix: str,
        targets: Sequence[PromptTarget],
        *,
        allow_mixed: bool = False,
    ) -> PromptsStage:
        """Plan the run (DatasetError for a folder without annotations, or groups written with other
        settings unless `allow_mixed`); records the stage's settings in dataset.json."""
        root = Path(out)
        if not (root / ANNOTATIONS).is_file():
            raise DatasetError(f"{OUT} {root}: no {ANNOTATIONS} there; run the render stage first")
        stage = cls(root, check_n(n), writer, dict(writer_settings), suffix, list(targets), allow_mixed)
        existing = read_groups(root)
        for target in stage.targets:
            old = existing.get((target.class_key, target.model))
            new = group_settings(stage.writer_settings, stage.n, target)
            if old is not None and dict(old.settings) == new:
                stage.done.append(target)
                continue
            if old is not None and old.prompts and not allow_mixed:
                diff = describe_diff(settings_diff(dict(old.settings), new))
                raise DatasetError(
                    f"{OUT} {root}: {target.key} already has {len(old.prompts)} prompts in {PROMPTS_FILE}, written "
                    f"with other settings ({diff}); pass {ALLOW_MIXED} to write them again, or choose a new {OUT}"
                )
            stage.pending.append(target)
        if stage.targets:
            Dataset.open(
                root,
                "prompts",
                {"writer": writer, **stage.writer_settings, "n": stage.n},
                allow_mixed=True,
                tool_version=__version__,
            )
        return stage

    def record(self, target: PromptTarget, written: Written) -> PromptGroup:
        """Append a finished group to prompts.jsonl (nothing else is touched); returns it."""
        group = make_group(
            target, written, self.writer, group_settings(self.writer_settings, self.n, target), self.suffix
        )
        append_groups(self.out, [group])
        self.written.append(group)
        return group

    def finish(self) -> dict[tuple[str, str | None], PromptGroup]:
        """Rewrite prompts.jsonl in key order (the same groups, the same bytes); returns its groups."""
        return rewrite_groups(self.out)

    def short(self) -> list[PromptGroup]:
        """The groups written now that hold fewer than N prompts (the cap was reached)."""
        return [g for g in self.written if len(g.prompts) < self.n]
