"""Notebook widgets: the live tuner (needs ipywidgets and plotly, the `notebooks` extra), imported on
first use. Lesson settings live in `mmprompt_lab.settings`."""

__all__ = ["LiveTuner", "TunerRun"]


def __getattr__(name: str):
    if name in ("LiveTuner", "TunerRun"):
        from . import tuner

        return getattr(tuner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
