"""The Hugging Face Hub as the fallback source of models and datasets: answer in seconds.

Which names go to the hub: a name that is not a preset / existing file or directory goes to
the hub only if it could be a hub id (`name` or `org/name`, letters, digits, `-_.`) and is not
written as a path: no leading `.`, `/`, `~`, no backslash, at most one `/`, no file suffix
(`.gguf`, `.jsonl`, ...), and its first component is not an existing directory (`runs/x` with
a `runs/` directory here is a missing local run, not a hub repo). Any other name that does not
exist is a missing local path, reported at once.

How a hub name is looked up: one request with a TIMEOUT_S limit (`status`) before the real
download. A missing repo is one line at once; an unreachable hub (no network, DNS down, no
answer in time) makes the load run in offline mode, so it is served from the local cache or
fails at once, instead of the hub client's retries (about a minute per file).
HF_HUB_OFFLINE=1 skips the request.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


def looks_local(name: str, suffixes: tuple[str, ...] = ()) -> bool:
    """True when `name` can only be meant as a local path (see the module docstring)."""
    return (
        name.startswith((".", "/", "~", "\\"))
        or name.lower().endswith(tuple(s.lower() for s in suffixes))
        or name.count("/") > 1
        or "\\" in name
        or not HUB_ID.match(name)
        or ("/" in name and Path(name.split("/")[0]).expanduser().is_dir())
    )


def is_offline() -> bool:
    """HF_HUB_OFFLINE (or the older TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE) is set."""
    import huggingface_hub.constants as constants

    if constants.HF_HUB_OFFLINE:
        return True
    return any(os.environ.get(k, "").strip().lower() in _TRUE
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def status(repo_id: str, repo_type: str = "model") -> str:
    """"offline" | "found" | "missing" | "unreachable" for a hub repo, asked once per process."""
    if is_offline():
        return "offline"
    return _ask(repo_id, repo_type, TIMEOUT_S)


@functools.lru_cache(maxsize=64)
def _ask(repo_id: str, repo_type: str, timeout: float) -> str:
    """One info request in a daemon thread: name resolution has no timeout of its own, so the
    thread is abandoned when it takes longer than `timeout`."""
    from huggingface_hub import HfApi   # imported here: the time limit is for the network only
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    answer = ["unreachable"]

    def ask() -> None:
        api = HfApi()
        info = api.dataset_info if repo_type == "dataset" else api.model_info
        try:
            info(repo_id, timeout=timeout)
            answer[0] = "found"
        except GatedRepoError:  # exists; the real download explains access
            answer[0] = "found"
        except RepositoryNotFoundError:
            answer[0] = "missing"
        except Exception:  # connection, timeout, server error: treat the hub as unreachable
            answer[0] = "unreachable"

    worker = threading.Thread(target=ask, name=f"hub-status-{repo_id}", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return answer[0]


@contextlib.contextmanager
def offline_mode():
    """Run hub-backed loads (transformers, datasets) from the local cache only, failing fast."""
    import huggingface_hub.constants as constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True   # transformers and huggingface_hub read it at call time
    flags = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    dconf = sys.modules.get("datasets.config")   # datasets copies it at import
    saved = {k: getattr(dconf, k) for k in flags if hasattr(dconf, k)} if dconf else {}
    for key in saved:
        setattr(dconf, key, True)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
        dconf_now = sys.modules.get("datasets.config")
        for key in flags:
            if dconf_now is not None and hasattr(dconf_now, key):
                setattr(dconf_now, key, saved.get(key, before))


def unreachable_note() -> str:
    return (f"the Hugging Face Hub could not be reached (no answer within {TIMEOUT_S:g} s) "
            "and it is not in the local cache")
