"""One CPU-thread policy for the command line and the Python API.

    configure_threads(None, "toyclip", "cpu")   # → 1 thread, unless the user already chose a count
    configure_threads(4, "ViT-B-16", "cpu")      # → 4 threads (an explicit count always wins)

Small models run fastest on one thread: measured on a 2-core CPU with another job running, a ToyCLIP
MaPLe step took 77 ms on one thread and 511 ms on two (OpenMP threads wait for each other when the CPU
is shared); its ops are too small to gain from more. A model source declares its preferred count
(`register_model_source(..., cpu_threads=1)`); other models keep torch's default.

The user has chosen a count, and the policy leaves it alone, when OMP_NUM_THREADS or MKL_NUM_THREADS
is set, when `configure_threads` (or `load_clip(threads=n)`) was given a number, or when
`torch.get_num_threads()` differs both from its value when mmprompt_lab was imported and from the
count this policy set. (A `torch.set_num_threads(n)` call with n equal to torch's default cannot be
told apart from the default: pass `threads=n` to `load_clip` instead.)
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)

_DEFAULT = torch.get_num_threads()  # torch's default (or the user's count if set before importing us)
_state: dict = {"ours": None, "explicit": False}


def user_chose_threads() -> bool:
    """True when the user picked a thread count (environment, an explicit call, or torch.set_num_threads)."""
    if any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")) or _state["explicit"]:
        return True
    now = torch.get_num_threads()
    return now not in (_DEFAULT, _state["ours"])


def configure_threads(threads: int | None, model: str, device: str | None = None) -> int:
    """Apply the thread policy for running `model` on `device`; returns torch's thread count after it.

    Args:
        threads: an explicit count (always applied, and remembered as the user's choice), or None for
            the policy: the model source's preferred count on the CPU (1 for ToyCLIP), unless the user
            already chose one (see the module docstring); torch's default otherwise.
        model: a model name as given to `load_clip` (e.g. "toyclip", "ViT-B-16", a ToyCLIP file).
        device: "cpu", "cuda", … ; None = cuda when available.

    Example:
        >>> configure_threads(None, "toyclip", "cpu")
        1
    """
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer ≥ 1 or None (the policy), got {threads!r}")
        torch.set_num_threads(threads)
        _state["explicit"] = True
        return threads
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") or user_chose_threads():
        return torch.get_num_threads()
    from .models import get_model_source

    preferred = get_model_source(model).cpu_threads
    if preferred and torch.get_num_threads() != preferred:
        log.info("using %d CPU thread(s) for %s (pass threads= or set OMP_NUM_THREADS to change)", preferred, model)
        torch.set_num_threads(preferred)
    if preferred:
        _state["ours"] = preferred
    return torch.get_num_threads()
