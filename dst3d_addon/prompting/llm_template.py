"""The LLM prompt writer's instruction and examples: one replaceable template file.

The file (`resources/llm_template.txt` by default, `--llm-template FILE` otherwise) is a chat:
`[system]`, then `[user]` / `[assistant]` pairs (examples), then the last `[user]` message, the
request made for each group. The last message must hold `{name}`; it may hold `{count}`,
`{keywords}` and `{synonyms}`. Lines starting with `#` are comments.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import setting
from ..core.prompts import PromptError, decode_text, read_file_bytes

RESOURCES = Path(__file__).resolve().parent / "resources"
TEMPLATE_FILE = RESOURCES / "llm_template.txt"
LLM_TEMPLATE = setting("llm_template")
ROLES = ("system", "user", "assistant")
#: What the last [user] message may ask with.
FIELDS = ("name", "count", "keywords", "synonyms")
_SECTION = re.compile(r"^\[\s*([a-z]+)\s*\]\s*$")
_FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class LlmTemplate:
    """A parsed template: its messages (role, text) and the file's sha256."""

    path: str
    sha256: str
    messages: tuple[tuple[str, str], ...]

    def render(
        self, name: str, count: int, keywords: tuple[str, ...] = (), synonyms: tuple[str, ...] = ()
    ) -> list[dict[str, str]]:
        """The chat for one group: the examples as written, the last message filled in."""
        values = {
            "name": name,
            "count": str(count),
            "keywords": ", ".join(keywords) if keywords else "none",
            "synonyms": ", ".join(s for s in synonyms if s.casefold() != name.casefold()) or "none",
        }
        chat = [{"role": role, "content": text} for role, text in self.messages[:-1]]
        role, text = self.messages[-1]
        chat.append({"role": role, "content": _FIELD.sub(lambda m: values[m.group(1).strip()], text)})
        return chat

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "sha256": self.sha256, "messages": [list(m) for m in self.messages]}

    @classmethod
    def from_dict(cls, data: dict) -> LlmTemplate:
        return cls(data["path"], data["sha256"], tuple((r, t) for r, t in data["messages"]))


def load_llm_template(path: str | os.PathLike | None = None, what: str = LLM_TEMPLATE) -> LlmTemplate:
    """Read a template file (the shipped one by default); PromptError names the option, file and line."""
    p = Path(path) if path is not None else TEMPLATE_FILE
    data = read_file_bytes(p, what, "a template file")
    text = decode_text(data, what, p)

    def fail(line: int | None, problem: str) -> PromptError:
        return PromptError(f"{what} {p}" + ("" if line is None else f":{line}") + f": {problem}")

    messages: list[tuple[str, list[str], int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith("#"):
            continue
        m = _SECTION.match(raw.strip())
        if m:
            role = m.group(1)
            if role not in ROLES:
                raise fail(number, f"unknown section [{role}]; use [system], [user] or [assistant]")
            if role == "system" and messages:
                raise fail(number, "[system] must come first")
            messages.append((role, [], number))
            continue
        if not messages:
            if raw.strip():
                raise fail(number, f"{raw.strip()!r} is outside any [section]")
            continue
        messages[-1][1].append(raw.rstrip())
    chat = [(role, "\n".join(lines).strip(), line) for role, lines, line in messages]
    if not chat:
        raise fail(None, "no messages in the file (it is empty or holds only comments)")
    for role, body, line in chat:
        if not body:
            raise fail(line, f"[{role}] is empty")
    if chat[-1][0] != "user":
        raise fail(chat[-1][2], "the last message must be a [user] message: the request for each group")
    for role, body, line in chat[:-1]:
        if "{" in body or "}" in body:
            raise fail(line, f"[{role}]: braces belong in the last [user] message only")
    role, body, line = chat[-1]
    fields = [f.strip() for f in _FIELD.findall(body)]
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or body.count("{") != body.count("}") or body.count("{") != len(fields):
        raise fail(
            line,
            f"the request has an unknown slot {{{unknown[0] if unknown else ''}}}; use "
            + ", ".join(f"{{{f}}}" for f in FIELDS),
        )
    if "name" not in fields:
        raise fail(line, "the request has no {name} slot for the object's name")
    return LlmTemplate(str(p), hashlib.sha256(data).hexdigest(), tuple((r, b) for r, b, _ in chat))
