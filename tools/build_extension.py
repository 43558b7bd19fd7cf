"""Build the dst3d extension: fetch the manifest's wheels, build one zip per platform, validate them.

    python tools/build_extension.py                        # every platform of the manifest -> dist/
    python tools/build_extension.py --platforms linux-x64  # only some (what the tests build)

It needs only the `bpy` module (pip install bpy): Blender's own extension builder and validator
(`blender_ext.py` in bpy's bundled scripts) run as subprocesses with this Python, with Blender's
list of valid tags. Wheels missing from `wheels/` are downloaded with `pip download` for the exact
file name the manifest lists (so CI needs the package index, nothing else). A bad option or a
failed step prints one line and exits with status 2 or 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "blender_manifest.toml"
PYTHON_VERSION = "3.11"  # Blender 4.2 to 4.5 ship Python 3.11

#: Folders of the checkout that never go into the staged source (big, or not part of the package).
_NOT_STAGED = {
    ".git",
    ".venv",
    ".venvs",
    "dist",
    "runs",
    "wheels",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}


class BuildError(Exception):
    """A step of the build failed; the message is one line saying which and why."""


def wheel_platforms(filename: str) -> list[str]:
    """Blender platforms (`linux-x64`, ...) a wheel file serves, from its platform tag(s)."""
    stem = Path(filename).name.removesuffix(".whl")
    parts = stem.split("-")
    if len(parts) < 5:
        raise BuildError(f"{filename}: not a wheel file name (name-version-python-abi-platform.whl)")
    result: list[str] = []
    for tag in parts[-1].split("."):
        if tag == "any":
            return ["any"]
        if tag.startswith(("manylinux", "musllinux", "linux")):
            system = "linux"
        elif tag.startswith("win"):
            system = "windows"
        elif tag.startswith("macosx"):
            system = "macos"
        else:
            raise BuildError(f"{filename}: unknown wheel platform tag {tag!r}")
        if tag.endswith("universal2"):
            machines = ["x64", "arm64"]
        elif tag.endswith(("x86_64", "amd64")):
            machines = ["x64"]
        elif tag.endswith(("arm64", "aarch64")):
            machines = ["arm64"]
        else:
            raise BuildError(f"{filename}: unknown machine in wheel platform tag {tag!r}")
        result += [f"{system}-{m}" for m in machines if f"{system}-{m}" not in result]
    return result


def read_manifest(root: Path) -> dict:
    """The parsed manifest; a BuildError names the file when it is missing or not TOML."""
    path = root / MANIFEST
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise BuildError(f"{path}: not found (run from the repository, or give --source)") from None
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{path}: not valid TOML ({exc})") from None


def wheels_for(manifest: dict, platforms: Sequence[str]) -> list[str]:
    """The manifest's wheel paths that serve at least one of `platforms`."""
    return [
        w
        for w in manifest.get("wheels", [])
        if any(p in platforms or p == "any" for p in wheel_platforms(Path(w).name))
    ]


def fetch_wheel(path: Path, python: str = sys.executable) -> None:
    """Download the wheel file `path` names (exact name, version and platform) with pip."""
    parts = path.name.removesuffix(".whl").split("-")
    name, version, platform_tags = parts[0], parts[1], parts[-1].split(".")
    command = [python, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
    command += ["--only-binary=:all:", "--no-deps", "--python-version", PYTHON_VERSION]
    for tag in platform_tags:
        command += ["--platform", tag]
    command += ["--dest", str(path.parent), f"{name.replace('_', '-')}=={version}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"pip download of {path.name} failed: {_last_line(done.stderr or done.stdout)}")
    if not path.is_file():
        got = sorted(p.name for p in path.parent.glob(f"{parts[0]}-{version}-*.whl"))
        raise BuildError(f"pip download did not produce {path.name} (found: {', '.join(got) or 'nothing'})")


def blender_ext_paths() -> tuple[Path, Path]:
    """(blender_ext.py, tags.py) from the bpy module's bundled scripts."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the bpy module is not installed in this Python: pip install bpy (4.2 or later)")
    for base in spec.submodule_search_locations:
        scripts = sorted(Path(base).glob("*/scripts"))
        for folder in reversed(scripts):
            cli = folder / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
            tags = folder / "modules" / "_bpy_internal" / "extensions" / "tags.py"
            if cli.is_file() and tags.is_file():
                return cli, tags
    raise BuildError("bpy's bundled scripts have no addons_core/bl_pkg/cli/blender_ext.py (bpy 4.2 or later)")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _toml_list(key: str, values: Sequence[str]) -> str:
    items = "".join(f'  "{v}",\n' for v in values)
    return f"{key} = [\n{items}]"


def restrict_manifest(text: str, platforms: Sequence[str], wheels: Sequence[str]) -> str:
    """The manifest text with its `platforms` and `wheels` lists replaced (top-level keys only)."""
    for key, values in (("platforms", platforms), ("wheels", wheels)):
        pattern = re.compile(rf"^{key}\s*=\s*\[[^\]]*\]", re.MULTILINE)
        text, count = pattern.subn(_toml_list(key, values).replace("\\", "\\\\"), text, count=1)
        if count != 1:
            raise BuildError(f"{MANIFEST}: no top-level `{key} = [...]` list to restrict")
    return text


def stage(root: Path, manifest: dict, platforms: Sequence[str], wheels: Sequence[str], into: Path) -> Path:
    """Copy the package source and the chosen wheels into `into` with a manifest for `platforms`."""
    source = into / manifest["id"]

    def ignore(folder: str, names: list[str]) -> set[str]:
        return (
            {n for n in names if n in _NOT_STAGED} if Path(folder) == root else {"__pycache__"} & set(names)
        )

    shutil.copytree(root, source, ignore=ignore, symlinks=False)
    for wheel in wheels:
        target = source / wheel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / wheel, target)
    text = (root / MANIFEST).read_text(encoding="utf-8")
    if list(platforms) != list(manifest["platforms"]):
        text = restrict_manifest(text, platforms, wheels)
    (source / MANIFEST).write_text(text, encoding="utf-8")
    return source


def run_blender_ext(args: Sequence[str], python: str = sys.executable) -> str:
    """Run Blender's extension CLI; returns its output, raises BuildError with its last line."""
    cli, _tags = blender_ext_paths()
    done = subprocess.run([python, str(cli), *args], capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "FATAL_ERROR" in output or "\nerror:" in output.lower():
        raise BuildError(f"blender_ext {args[0]} failed: {_last_line(output)}")
    return output


def validate(path: Path) -> str:
    """Run Blender's extension validator on a source folder or zip (with Blender's valid tags)."""
    _cli, tags = blender_ext_paths()
    return run_blender_ext(["validate", str(path), "--valid-tags", str(tags)])


def build(
    root: Path = ROOT,
    out: Path | None = None,
    platforms: Sequence[str] | None = None,
    fetch: bool = True,
) -> list[Path]:
    """Fetch the wheels, build and validate one zip per platform; returns the zips' paths."""
    root = Path(root).resolve()
    out = Path(out) if out is not None else root / "dist"
    manifest = read_manifest(root)
    declared = list(manifest.get("platforms", []))
    chosen = list(platforms) if platforms else declared
    unknown = [p for p in chosen if p not in declared]
    if unknown:
        raise BuildError(f"--platforms {','.join(unknown)}: the manifest declares only {', '.join(declared)}")
    wheels = wheels_for(manifest, chosen)
    for wheel in wheels:
        path = root / wheel
        if not path.is_file():
            if not fetch:
                raise BuildError(f"{path}: missing (run without --no-fetch to download it)")
            print(f"fetching {path.name}", file=sys.stderr, flush=True)
            fetch_wheel(path)
    _cli, tags = blender_ext_paths()
    out.mkdir(parents=True, exist_ok=True)
    zips: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="dst3d-build-") as tmp:
        source = stage(root, manifest, chosen, wheels, Path(tmp))
        validate(source)
        build_args = ["build", "--source-dir", str(source), "--output-dir", str(out), "--split-platforms"]
        run_blender_ext([*build_args, "--valid-tags", str(tags)])
    for platform in chosen:
        path = out / f"{manifest['id']}-{manifest['version']}-{platform.replace('-', '_')}.zip"
        if not path.is_file():
            raise BuildError(f"blender_ext build wrote no {path.name} into {out}")
        validate(path)
        zips.append(path)
    return zips


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build, print the zips, return the exit status."""
    parser = argparse.ArgumentParser(prog="build_extension.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--platforms", help="comma-separated Blender platforms (default: the manifest's)")
    parser.add_argument("--out", type=Path, help="output folder (default: dist/ in the repository)")
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="the extension's source (default: this repo)"
    )
    parser.add_argument("--no-fetch", action="store_true", help="fail instead of downloading missing wheels")
    args = parser.parse_args(argv)
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()] if args.platforms else None
    try:
        zips = build(args.source, args.out, platforms, fetch=not args.no_fetch)
    except BuildError as exc:
        print(f"build_extension.py: {exc}", file=sys.stderr)
        return 1
    for path in zips:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
