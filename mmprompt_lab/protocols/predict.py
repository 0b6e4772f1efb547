"""`predict`: top-k classes with probabilities for your own images, from a checkpoint or a learner.

    mpl.predict("runs/maple-toyworld_shapes-seed1", ["cat.jpg", "photos/"], topk=3)
    → [{"image": "cat.jpg", "top": [{"classname": "circle", "probability": 0.71, "index": 0}, …]}, …]

Probabilities are the softmax of the learner's scaled cosine logits over all its classes, so the
top-k probabilities sum to at most 1. Images are read as RGB (grayscale, CMYK, alpha handled) and
given the test transform of the learner's CLIP.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterable

import torch
from PIL import Image

from ..data.images import IMAGE_EXTENSIONS, file_kind, list_image_files, load_rgb
from ..engine import load_learner
from ..engine.train import pick_device
from ..transforms import test_transform
from ..learners.base import PromptLearner

ImageLike = str | os.PathLike | Image.Image


def expand_images(images: ImageLike | Iterable[ImageLike]) -> list[tuple[str, ImageLike]]:
    """(name, path or PIL image) pairs: folders expand to their image files (recursive, sorted).

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: nothing to predict (no images given, or a folder without image files), or a path
            that is neither a folder nor a regular file (a FIFO, socket or device is never opened).
    """
    if isinstance(images, (str, os.PathLike, Image.Image)):
        images = [images]
    out: list[tuple[str, ImageLike]] = []
    for n, image in enumerate(images):
        if isinstance(image, Image.Image):
            out.append((f"<image {n}>", image))
            continue
        path = Path(image).expanduser()
        kind = file_kind(path)
        if kind == "folder":
            files = sorted(Path(p) for p in list_image_files(path))  # FIFOs and the like: skipped, logged
            if not files:
                raise ValueError(f"folder {path} holds no image files (looked for: {' '.join(IMAGE_EXTENSIONS)})")
            out += [(str(p), p) for p in files]
        elif kind == "file":
            out.append((str(path), path))
        elif kind == "missing":
            raise FileNotFoundError(f"image not found: {path}")
        else:
            raise ValueError(f"cannot predict {path}: not an image file or a folder ({kind})")
    if not out:
        raise ValueError("no images given to predict")
    return out


@torch.no_grad()
def predict(
    checkpoint_or_learner: str | os.PathLike | PromptLearner,
    images: ImageLike | Iterable[ImageLike],
    topk: int = 5,
    *,
    batch_size: int = 32,
    device: str | None = None,
    clip=None,
) -> list[dict]:
    """Top-k classes with probabilities for each image.

    Args:
        checkpoint_or_learner: a checkpoint folder (written by `mmprompt-lab tune` or `save_learner`)
            or a learner object.
        images: image paths, folders (all image files inside, recursively, sorted), PIL images, or
            a list of them.
        topk: how many classes per image (at most the learner's number of classes).
        batch_size: images per forward pass.
        device: "cpu", "cuda", … (default: cuda if available).
        clip: the FrozenCLIP for a checkpoint (default: load the backbone named in the checkpoint).
    Returns:
        One dict per image, in input order: {"image": path or "<image n>", "top": [{"classname",
        "probability", "index"}, …]} sorted by decreasing probability.
    Raises:
        BadImageError (a ValueError) naming the file for an unreadable, oversized or non-regular
        image file; FileNotFoundError for a missing one; FloatingPointError when the learner gives
        NaN or infinite logits (never NaN probabilities).

    Example:
        >>> predict("runs/maple-toyworld_shapes-seed1", ["my_drawing.png"], topk=3)[0]["top"][0]
        {'classname': 'star', 'probability': 0.83, 'index': 1}
    """
    if topk < 1:
        raise ValueError(f"topk must be ≥ 1, got {topk}")
    if isinstance(checkpoint_or_learner, PromptLearner):
        learner = checkpoint_or_learner
    else:
        learner = load_learner(checkpoint_or_learner, clip, device=device)
    named = expand_images(images)
    pil = [(name, img if isinstance(img, Image.Image) else load_rgb(img)) for name, img in named]  # read all first
    device = pick_device(device)
    learner.to(device).eval()
    transform = test_transform(learner.clip)
    text = None if learner.conditional else learner.encode_text()  # (C, E)
    k = min(topk, len(learner.classnames))
    out = []
    for start in range(0, len(pil), batch_size):
        chunk = pil[start : start + batch_size]
        x = torch.stack([transform(img.convert("RGB")) for _, img in chunk]).to(device)  # (B, 3, H, W)
        logits = learner(x, text_features=text).float()  # (B, C)
        if not torch.isfinite(logits).all():
            bad = [name for (name, _), ok in zip(chunk, torch.isfinite(logits).all(-1).tolist(), strict=True) if not ok]
            raise FloatingPointError(
                f"{learner.name} gave NaN or infinite logits for {len(bad)} image(s) "
                f"({', '.join(bad[:3])}{' …' if len(bad) > 3 else ''}); its prompts are "
                "not usable: retrain it (e.g. with a lower lr) or use another checkpoint"
            )
        probs = logits.softmax(-1).cpu()  # (B, C)
        values, indices = probs.topk(k, dim=-1)  # (B, k), sorted
        for (name, _), vals, idx in zip(chunk, values.tolist(), indices.tolist(), strict=True):
            out.append(
                {
                    "image": name,
                    "top": [
                        {"classname": learner.classnames[i], "probability": v, "index": i}
                        for v, i in zip(vals, idx, strict=True)
                    ],
                }
            )
    return out
