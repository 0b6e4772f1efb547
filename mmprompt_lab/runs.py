"""Run folders that are never lost or half-written.

    with RunFolder.open("runs/maple-toyworld_polygons-seed1", overwrite=False, resume=False) as run:
        ... train with checkpoint_dir=run.work ...        # run.work: a hidden sibling, `.NAME.partial`
        run.commit()                                      # renamed into place as a whole

- an explicit folder that already holds a run is refused unless `overwrite=True`;
- `RunFolder.fresh(base)` picks the first free name (`base`, `base-2`, `base-3`, …), so the same
  command twice gives two runs;
- everything is written into `.NAME.partial` (which also keeps the epoch checkpoints that `resume`
  continues from) and renamed onto NAME at the end; an interrupted run leaves only the partial;
- a lock file `.NAME.lock` (holding the writer's pid) gives a second writer a clear error;
- the parent folder is checked writable before anything runs.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .io import read_json, write_json

RUN_MARKERS = ("metrics.json", "learner.json", "run.json")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exists, locked, not writable)."""


def holds_run(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in RUN_MARKERS)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as err:
        return err.errno == errno.EPERM
    return True


def check_writable(folder: Path) -> None:
    """Create `folder` (and parents) and prove a file can be written there, before any training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunFolderError(f"cannot write into {folder}: {err.strerror or err}; choose another --out") from None


class FolderLock:
    """A lock file holding the writer's pid: a second writer gets a clear error, a stale lock (its
    writer gone) is taken over. Usable as a context manager."""

    def __init__(self, path: Path, guards: Path):
        self.path, self.guards = Path(path), guards

    def acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid):
                raise RunFolderError(
                    f"{self.guards} is being written by another run (pid {pid}, lock "
                    f"{self.path}); wait for it or choose another --out"
                ) from None
            self.path.unlink(missing_ok=True)  # stale: its writer is gone
            return self.acquire()
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return self

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class RunFolder:
    """A run's final folder, its partial work folder and its lock (see the module docstring)."""

    def __init__(self, final: Path):
        self.final = final
        self.work = final.with_name(f".{final.name}.partial")
        self.lock = final.with_name(f".{final.name}.lock")
        self._lock: FolderLock | None = None
        self.resumed = False

    # ------------------------------------------------------------------ choosing the folder
    @classmethod
    def open(cls, out: str | Path, *, overwrite: bool = False, resume: bool = False) -> RunFolder:
        """An explicit output folder: refused if it is a file, holds a run (unless `overwrite`), or
        has no interrupted run to continue when `resume` is asked."""
        final = Path(out).expanduser()
        if final.exists() and not final.is_dir():
            raise RunFolderError(f"--out {final} is a file, not a folder; choose another --out")
        run = cls(final)
        if final.is_dir() and any(final.iterdir()) and not overwrite:
            what = "already holds a run" if holds_run(final) else "exists and is not empty"
            raise RunFolderError(
                f"{final} {what}; pass --overwrite to replace it, or choose another --out "
                "(without --out every run gets a fresh folder)"
            )
        if resume and not run.work.is_dir():
            raise RunFolderError(f"nothing to resume: {run.work} does not exist (no interrupted run of {final})")
        if run.work.exists() and not resume:
            if not overwrite:
                raise RunFolderError(
                    f"an interrupted run of {final} is kept in {run.work}; continue it with --resume, "
                    "or pass --overwrite to start afresh"
                )
            shutil.rmtree(run.work)
        return run

    @classmethod
    def fresh(cls, base: str | Path, *, resume: bool = False) -> RunFolder:
        """A default output folder: `base`, or `base-2`, `base-3`, … — the first that holds no run
        and no interrupted run. With `resume`, the most recent interrupted run of `base` instead."""
        base = Path(base).expanduser()
        candidates = [base] + [base.with_name(f"{base.name}-{n}") for n in range(2, 10_000)]
        if resume:
            partial = [cls(c) for c in candidates[:1000] if cls(c).work.is_dir()]
            if not partial:
                raise RunFolderError(
                    f"nothing to resume: no interrupted run of {base} (looked for "
                    f"{cls(base).work.name} and numbered siblings)"
                )
            return max(partial, key=lambda r: r.work.stat().st_mtime)
        for c in candidates:
            run = cls(c)
            if not c.exists() and not run.work.exists() and not run.lock.exists():
                return run
        raise RunFolderError(f"no free run folder name next to {base}")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RunFolder:
        check_writable(self.final.parent)
        self._acquire()
        self.resumed = self.work.is_dir() and any(self.work.iterdir())
        self.work.mkdir(exist_ok=True)
        return self

    def __exit__(self, kind, error, tb) -> None:
        # an error other than an interruption leaves nothing behind unless the run was being resumed
        if kind is not None and not issubclass(kind, KeyboardInterrupt) and not self.resumed:
            shutil.rmtree(self.work, ignore_errors=True)
        self._release()

    def _acquire(self) -> None:
        self._lock = FolderLock(self.lock, self.final).acquire()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ contents
    def check_spec(self, spec: dict) -> None:
        """Record the run's spec in the work folder; a resumed run must have the same spec."""
        path = self.work / "run.json"
        if path.exists():
            saved = read_json(path, "run spec")
            if saved != spec:
                diff = sorted(k for k in set(saved) | set(spec) if saved.get(k) != spec.get(k))
                raise RunFolderError(
                    f"the interrupted run in {self.work} was made with other settings "
                    f"({', '.join(f'{k}: {saved.get(k)!r} → {spec.get(k)!r}' for k in diff)}); "
                    "resume it with the same command, or start afresh with --overwrite"
                )
        else:
            write_json(path, spec)

    def commit(self) -> Path:
        """Move the finished work folder into place (replacing an old run when overwriting)."""
        for name in ("train_state.safetensors", "train_state.json"):
            (self.work / name).unlink(missing_ok=True)
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
        os.replace(self.work, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final
