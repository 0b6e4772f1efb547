"""Reading images from disk: always RGB, and errors that name the file.

Grayscale, CMYK, palette (with or without transparency), 16-bit and alpha images become RGB the way
the official code does it (`Image.open(path).convert("RGB")`: alpha is dropped, not composited).
"""
from __future__ import annotations

import os
import warnings
from typing import Iterable

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class BadImageError(ValueError):
    """An image file exists but cannot be decoded."""


class MissingImageError(FileNotFoundError):
    """Images listed in a split are not on disk."""


def is_image_file(name: str) -> bool:
    """True for file names with a known image extension (case-insensitive), not hidden files."""
    return not os.path.basename(name).startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open `path` as a fully decoded RGB PIL image.

    Raises:
        MissingImageError: the file does not exist.
        BadImageError: the file exists but is not a readable image (names the file and the reason).
    """
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError:
        raise MissingImageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadImageError(f"cannot read image {path}: {type(err).__name__}: {err}. "
                            "Replace or delete the file, or pass skip_bad_images=True.") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → RGB (palette transparency goes through RGBA to avoid PIL's warning)."""
    if image.mode == "RGB":
        return image.copy()
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bit
        image = image.point(lambda v: v / 256).convert("L")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return image.convert("RGB")


def check_images_exist(paths: Iterable[str | None], where: str) -> None:
    """Raise one MissingImageError listing the missing files of a split (first 5 and the count)."""
    missing = missing_images(paths)
    if missing:
        shown = "\n  ".join(missing[:5])
        more = f"\n  … and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise MissingImageError(f"{len(missing)} image(s) listed in {where} are missing:\n  {shown}{more}\n"
                                "Check the dataset folder with `mmprompt-lab data verify --root DIR`.")


def missing_images(paths: Iterable[str | None]) -> list[str]:
    """The paths (ignoring None) that do not exist, in order."""
    return [p for p in paths if p is not None and not os.path.exists(p)]
