"""Image transforms of the official recipe (docs/methods.md §0), sized and normalised from the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchvision import transforms as T

if TYPE_CHECKING:  # the transforms only read the model's image size and normalisation
    from .backbone import FrozenCLIP

AUGMENTS = ("official", "toy", "none")


def train_transform(clip: FrozenCLIP, augment: str = "official") -> T.Compose:
    """ "official": RandomResizedCrop(scale 0.08–1, bicubic) + flip; "toy": a milder crop (scale 0.6–1)
    for 32 px ToyWorld images, whose objects a 0.08 crop would cut away; "none": the test transform."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    if augment == "none":
        return test_transform(clip)
    scale, ratio = ((0.08, 1.0), (3 / 4, 4 / 3)) if augment == "official" else ((0.6, 1.0), (0.9, 1.1))
    return T.Compose(
        [
            T.RandomResizedCrop(clip.image_size, scale=scale, ratio=ratio, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(clip.mean, clip.std),
        ]
    )


def test_transform(clip: FrozenCLIP) -> T.Compose:
    """Resize the shorter side (bicubic) → centre crop → normalise."""
    return T.Compose(
        [
            T.Resize(clip.image_size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(clip.image_size),
            T.ToTensor(),
            T.Normalize(clip.mean, clip.std),
        ]
    )
