"""ToyCLIP: a tiny open_clip CLIP (ViT image tower with a convolutional stem) for ToyWorld.

The architecture is the open_clip model config `toyclip.json` (registered with
`open_clip.add_model_config`), built by open_clip's own factory. The only change is `visual.conv1`:
the single stride-4 patch convolution is replaced by `ConvStem`, a small stack of 3×3 convolutions
with the same output shape (B, width, grid, grid). Locality in the stem is what lets a tiny ViT
learn shape, not only colour (docs/toyclip.md, runs R2→R3). GroupNorm instead of BatchNorm keeps
the frozen model independent of batch statistics and of train/eval mode.

Importing this module registers the "toyclip" model source (`mmprompt_lab.models`): `load_clip`
then loads "toyclip" and ToyCLIP `.safetensors` files through `load_source`, with one CPU thread by
the thread policy. `mmprompt_lab/__init__.py` imports it; the backbone never names ToyCLIP.
"""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..models import LoadedModel, ModelTag, register_model_source
from ..seeding import rng_scope

log = logging.getLogger(__name__)

MODEL_NAME = "toyclip"
CONFIG_PATH = Path(__file__).with_name("toyclip.json")
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "toyclip.safetensors"
PREPROCESS = {"image_size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


class ConvStem(nn.Module):
    """Patch embedding by convolutions: (B, 3, H, W) → (B, width, H/stride, W/stride).

    log2(stride) 3×3 stride-2 convolutions (32, 64, 128 channels), one 3×3 stride-1 convolution to
    `width`, and a 1×1 projection with bias (the role of the original patch embedding).
    """

    def __init__(self, width: int, stride: int = 4):
        super().__init__()
        n_down = {2: 1, 4: 2, 8: 3}.get(stride)
        if n_down is None:
            raise ValueError(f"ConvStem stride must be 2, 4 or 8, got {stride}")
        chans = [3, 32, 64, 128][: n_down + 1]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += self._block(cin, cout, 2)
        layers += self._block(chans[-1], width, 1)
        self.net = nn.Sequential(*layers, nn.Conv2d(width, width, 1))

    @staticmethod
    def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, width, H/stride, W/stride)


def _register() -> None:
    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)


def build_model(**overrides) -> open_clip.model.CLIP:
    """A randomly initialised ToyCLIP in train mode (open_clip CLIP with the conv stem).

    `overrides` are passed to `open_clip.create_model` (e.g. vision_cfg=...) for experiments.
    """
    _register()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip warns "initialized randomly" before our weights are loaded
    try:
        model = open_clip.create_model(MODEL_NAME, pretrained=None, **overrides)
    finally:
        root.setLevel(level)
    # the stem keeps the config's patch size as its stride, so grid and positional embedding agree
    model.visual.conv1 = ConvStem(model.visual.conv1.out_channels, model.visual.conv1.stride[0])
    return model


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a ToyCLIP safetensors file into `model` (casting fp16 → the model's dtype)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"ToyCLIP weights not found at {path}. Pass pretrained=False for a random model, a path "
            "to a file written by mmprompt_lab.toyclip.export_weights, or reinstall mmprompt_lab "
            "(the default file ships in mmprompt_lab/assets/)."
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{path} is not a readable safetensors file ({err}). Re-export it with "
            "mmprompt_lab.toyclip.export_weights(checkpoint, dest)."
        ) from err
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"{path} does not hold ToyCLIP weights: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]} ({len(missing)}/{len(unexpected)} keys). "
            "Was it written for another config?"
        )
    model.load_state_dict(state)  # copy_ casts fp16 → fp32


def get_tokenizer():
    """The open_clip SimpleTokenizer with ToyCLIP's context length."""
    _register()
    return open_clip.get_tokenizer(MODEL_NAME)


def create_toyclip(pretrained: bool | str | Path = True):
    """Build ToyCLIP.

    Args:
        pretrained: True = the shipped weights (mmprompt_lab/assets/toyclip.safetensors); a path =
            that safetensors file; False = random initialisation.

    Returns:
        (model, tokenizer, preprocess): an fp32 `open_clip.model.CLIP` in eval mode, the open_clip
        tokenizer with the model's context length, and {"image_size", "mean", "std"}.

    Example:
        >>> model, tokenizer, preprocess = create_toyclip()
        >>> model.encode_text(tokenizer(["a photo of a star."])).shape   # (1, 128)
    """
    model = build_model()
    if pretrained is not False:
        load_weights(model, DEFAULT_WEIGHTS if pretrained is True else pretrained)
    model.eval()
    return model, get_tokenizer(), dict(PREPROCESS)


# ---------------------------------------------------------------------------- the "toyclip" model source
def is_toyclip_name(name: str) -> bool:
    """ "toyclip", or an existing ToyCLIP weights file (*.safetensors)."""
    return name == MODEL_NAME or (name.endswith(".safetensors") and Path(name).expanduser().is_file())


def load_source(name: str, pretrained=None, precision: str = "fp32", download: bool = False) -> LoadedModel:
    """`load_clip`'s loader for ToyCLIP (nothing to download: the weights ship with the package).

    name "toyclip" with pretrained None/True = the shipped weights, False/"random"/"none" = random
    weights drawn from seed 0 (so checkpoints on them reload exactly), or a weights file; a name that
    is a ToyCLIP safetensors file loads that file.
    """
    if precision != "fp32":
        raise ValueError(
            f"ToyCLIP runs in fp32 (precision={precision!r} was asked); it is tiny, and mixed "
            "precision is autocast in the engine (fit(precision=...))"
        )
    if name != MODEL_NAME:
        weights = Path(name).expanduser()
    else:
        weights = {None: True, "random": False, "none": False}.get(pretrained, pretrained)
    with rng_scope(0 if weights is False else None):
        model, tokenizer, pre = create_toyclip(pretrained=weights)
    tag = None if weights is True else ("random" if weights is False else str(weights))
    return LoadedModel(model, tokenizer, MODEL_NAME, tag, pre["mean"], pre["std"], augment="toy")


register_model_source(
    MODEL_NAME,
    load_source,
    matches=is_toyclip_name,
    cpu_threads=1,
    tags=lambda: [ModelTag(MODEL_NAME, None, DEFAULT_WEIGHTS.is_file())],
    description="ToyCLIP, embedded: shipped weights trained on ToyWorld",
)
