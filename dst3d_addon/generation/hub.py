"""The Hugging Face hub and its cache, as every dst3d worker uses them (no torch here).

Hub ids load from the local cache first; only when that misses and the hub may be used
(`worker_env.hub_offline`) is it tried, after one quick reachability probe, so an offline machine
fails in well under a second with one line saying what to download instead of retrying for
minutes. The generation worker loads pipelines through `from_hub`; KCF's estimator its ImageNet
backbones.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import BadInput, MissingWeights
from .worker_env import hub_offline

#: Seconds the reachability probe waits for the hub before calling it unreachable.
HUB_PROBE_TIMEOUT_S = 4.0
#: What a hub id looks like: `org/name`.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

T = TypeVar("T")
Progress = Callable[[str], None]


def hf_cache_dir(cache_dir: str | None = None) -> Path:
    """The Hugging Face hub cache in use: `cache_dir`, `$HF_HUB_CACHE`, `$HF_HOME/hub`, or the default."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def probe_hub(repo_id: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when the hub answers for `repo_id`, else a short reason (one HEAD request, no retries).

    BadInput when the hub says there is no such model (or it is gated and we are not logged in).
    """
    url = f"{_hub_endpoint()}/api/models/{repo_id}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError as error:
        if error.code in (401, 403, 404):
            raise BadInput(
                f"{repo_id}: the Hugging Face hub has no such model (HTTP {error.code}); check the id, "
                "or log in (`hf auth login`) if it is gated"
            ) from None
        return f"HTTP {error.code} from {url}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"{type(reason).__name__}: {reason}".splitlines()[0][:160]


def in_cache(repo_id: str, cache_dir: str | None = None) -> bool:
    """Whether the hub cache holds a snapshot of model `repo_id` with its config.json (no network)."""
    snapshots = hf_cache_dir(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any((snap / "config.json").is_file() for snap in snapshots.iterdir())


def model_unavailable(name: str, cache_dir: str | None = None) -> str | None:
    """Why the model `name` (a local path or a hub id) cannot be had now, or None when it can: the
    path exists, the cache holds it, or the hub may be used and answers (one quick probe)."""
    if Path(name).expanduser().exists():
        return None
    if not HUB_ID.match(name):
        return "no such file or folder"
    if in_cache(name, cache_dir):
        return None
    try:
        return hub_unavailable(name)
    except BadInput as err:
        return str(err)
    except ImportError:
        return "not in the cache, and huggingface_hub is not installed here to fetch it"


def hub_unavailable(repo_id: str) -> str | None:
    """Why `repo_id` cannot be fetched now (offline, unreachable), or None when it can be tried."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    return probe_hub(repo_id)


def missing_weights(
    name: str, cache_dir: str | None, reason: str, ids: list[str] | None = None
) -> MissingWeights:
    """The one-line error for weights that are neither cached nor downloadable, with the commands
    that fetch them."""
    downloads = "; ".join(f"hf download {i}" for i in (ids or [name]))
    error = MissingWeights(
        f"{name}: weights not in the Hugging Face cache ({hf_cache_dir(cache_dir)}) and HF_HUB_OFFLINE=1 / "
        f"the hub cannot be reached ({reason}); download them on a machine with network "
        f"(e.g. `{downloads}`) and copy the cache, or pass a local folder / .safetensors file"
    )
    error.reason = reason  # type: ignore[attr-defined]
    return error


def one_line(error: BaseException) -> str:
    """An exception's message on one line, at most 300 characters."""
    text = " ".join(str(error).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(error).__name__


def from_hub(name: str, load: Callable[[bool], T], cache_dir: str | None, progress: Progress) -> T:
    """`load(local_files_only)` from the cache; on a miss, from the hub unless offline or unreachable."""
    try:
        return load(True)
    except OSError:  # diffusers / huggingface_hub report a cache miss as an OSError subclass
        pass
    reason = hub_unavailable(name)
    if reason is not None:
        raise missing_weights(name, cache_dir, reason)
    progress(f"downloading {name} from the Hugging Face hub into {hf_cache_dir(cache_dir)}")
    try:
        return load(False)
    except OSError as error:
        raise missing_weights(name, cache_dir, one_line(error)) from None


def hub_file(repo_id: str, filename: str, cache_dir: str | None, progress: Progress) -> str:
    """The local path of one file of a hub repository (cached, or fetched where allowed)."""
    from huggingface_hub import hf_hub_download

    cache = str(hf_cache_dir(cache_dir))
    return from_hub(
        repo_id,
        lambda local: hf_hub_download(repo_id, filename, cache_dir=cache, local_files_only=local),
        cache_dir,
        progress,
    )
