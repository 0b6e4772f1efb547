"""Notebook widgets and settings. `settings` is plain Python; the live tuner needs ipywidgets and
plotly (the `notebooks` extra) and is imported on first use."""
from .settings import NotebookSettings, ci_mode, learner_overrides, notebook_settings

__all__ = ["LiveTuner", "NotebookSettings", "ci_mode", "learner_overrides", "notebook_settings"]


def __getattr__(name: str):
    if name in ("LiveTuner", "TunerRun"):
        from . import tuner

        return getattr(tuner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
