"""mmprompt_lab: multi-modal prompt learning on a frozen open_clip CLIP.

import mmprompt_lab as mpl
clip = mpl.load_clip("toyclip")
train = mpl.load_dataset("toyworld/shapes", split="train", shots=16, seed=1, subsample="base")
learner = mpl.create_learner("maple", clip, classnames=train.classnames, seed=1)
history = mpl.fit(learner, train, epochs=5)
metrics = mpl.evaluate(learner, mpl.load_dataset("toyworld/shapes", split="test", subsample="base"))
"""

from .backbone import FrozenCLIP, load_clip
from . import toyclip  # noqa: F401,E402  (registers the "toyclip" model source)
from .data import list_datasets, load_dataset
from .engine import base_novel, evaluate, fit, harmonic_mean, load_learner, save_learner
from .learners import create_learner, list_learners
from .models import list_models, register_model_source
from .protocols import predict
from .settings import notebook_settings

__version__ = "0.1.0"
__all__ = [
    "FrozenCLIP",
    "base_novel",
    "create_learner",
    "evaluate",
    "fit",
    "harmonic_mean",
    "list_datasets",
    "list_learners",
    "list_models",
    "load_clip",
    "load_dataset",
    "load_learner",
    "notebook_settings",
    "predict",
    "register_model_source",
    "save_learner",
]


def __getattr__(name: str):
    # `mpl.analysis` / `mpl.widgets` load on first use: they need the optional notebook extras
    if name in ("analysis", "widgets"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
