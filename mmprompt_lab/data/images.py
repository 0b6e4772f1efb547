"""Reading images from disk: always RGB, and errors that name the file.

Grayscale, CMYK, palette (with or without transparency), 16-bit and alpha images become RGB the way
the official code does it (`Image.open(path).convert("RGB")`: alpha is dropped, not composited).

Only regular files are opened: a FIFO, socket, device or folder named like an image is refused
(opening a FIFO would block forever). Images larger than `pixel_limit()` pixels are refused before
decoding (decompression bombs); raise the limit with the environment variable
MMPROMPT_LAB_MAX_IMAGE_PIXELS (a number of pixels, or "none"), which then also sets PIL's
process-wide `Image.MAX_IMAGE_PIXELS`.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import warnings
from collections.abc import Iterable

from PIL import Image, UnidentifiedImageError

PIXEL_LIMIT_ENV = "MMPROMPT_LAB_MAX_IMAGE_PIXELS"
log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class BadImageError(ValueError):
    """An image file exists but cannot be decoded."""


class MissingImageError(FileNotFoundError):
    """Images listed in a split are not on disk."""


class ImageTooLargeError(BadImageError):
    """An image has more pixels than `pixel_limit()` (a possible decompression bomb)."""


def file_kind(path: str | os.PathLike) -> str:
    """What is at `path` (symlinks followed): "file", "missing", "folder", "FIFO", "socket", "device",
    or "unreadable: <reason>" when it cannot be examined (e.g. no permission)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as err:
        return f"unreadable: {err.strerror}"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    return "socket" if stat.S_ISSOCK(mode) else "device"


def pixel_limit() -> int | None:
    """The largest image, in pixels, that `load_rgb` decodes (None = no limit).

    $MMPROMPT_LAB_MAX_IMAGE_PIXELS when set (a positive integer, or "none"); otherwise PIL's
    `Image.MAX_IMAGE_PIXELS` (89,478,485 by default, about 9459 × 9459).
    """
    value = os.environ.get(PIXEL_LIMIT_ENV, "").strip()
    if not value:
        return Image.MAX_IMAGE_PIXELS
    if value.lower() == "none":
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{PIXEL_LIMIT_ENV}={value!r}: expected a positive number of pixels, or 'none'")
    return int(value)


def is_image_file(name: str) -> bool:
    """True for file names with a known image extension (case-insensitive), not hidden files."""
    return not os.path.basename(name).startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_image_files(folder: str | os.PathLike, recursive: bool = True) -> list[str]:
    """Paths of the image files in `folder` (and below it when `recursive`), sorted; hidden entries
    and symlinked folders are not followed.

    Entries named like images that are not regular files (a FIFO, socket, device, broken link, or a
    folder when not recursive) are skipped with a logged warning: they are never opened.
    """
    found: list[str] = []
    skipped: list[str] = []
    pending = [os.fspath(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_file():
                    if is_image_file(entry.name):
                        found.append(entry.path)
                elif recursive and entry.is_dir() and not entry.is_symlink():
                    pending.append(entry.path)
                elif is_image_file(entry.name):
                    skipped.append(f"{entry.path} ({file_kind(entry.path)})")
    if skipped:
        log.warning(
            "skipping %d path(s) in %s named like images that are not regular files: %s",
            len(skipped),
            folder,
            _first_five(sorted(skipped)),
        )
    return sorted(found)


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open `path` as a fully decoded RGB PIL image.

    Raises:
        MissingImageError: the file does not exist.
        ImageTooLargeError: the image has more pixels than `pixel_limit()` (checked before decoding).
        BadImageError: the path is not a regular file, or not a readable image (names the file and
            the reason).
    """
    kind = file_kind(path)
    if kind == "missing":
        raise MissingImageError(f"image not found: {path}")
    if kind != "file":
        raise BadImageError(
            f"cannot read image {path}: not a regular file ({kind}). Point to the image file itself, or remove it."
        )
    limit = pixel_limit()
    if Image.MAX_IMAGE_PIXELS != limit:  # only when the environment variable is set: PIL's limit is global
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1× and 2× its limit; here every size check it makes (at open,
            # and while decoding GIF frames or TIFF tiles) refuses the image instead
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageTooLargeError(_too_large(path, str(err), limit)) from None
    except FileNotFoundError:
        raise MissingImageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadImageError(
            f"cannot read image {path}: {type(err).__name__}: {err}. "
            "Replace or delete the file, or pass skip_bad_images=True."
        ) from None


def _too_large(path: str | os.PathLike, pil_message: str, limit: int | None) -> str:
    found = re.search(r"\((\d+) pixels\)", pil_message)  # PIL: "Image size (N pixels) exceeds limit …"
    size = f"{int(found.group(1)):,} pixels" if found else f"too large ({pil_message})"
    raise_to = found.group(1) if found else "<pixels>"
    return (
        f"image {path} is {size}, more than the limit of {limit:,} pixels (a guard against "
        f"decompression bombs). If the image is genuine, raise the limit with the environment variable "
        f"{PIXEL_LIMIT_ENV}={raise_to} (or 'none'), or downscale the file."
    )


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
    """Raise one error line naming the files of a split that are missing (MissingImageError) or are
    not regular files (BadImageError: FIFOs, sockets, devices, folders); the first 5 and the count."""
    paths = [p for p in paths if p is not None]
    missing = missing_images(paths)
    if missing:
        raise MissingImageError(
            f"{len(missing)} image(s) listed in {where} are missing: {_first_five(missing)}. "
            "Check the dataset folder with `mmprompt-lab data verify --root DIR`."
        )
    odd = not_regular_files(paths)
    if odd:
        raise BadImageError(
            f"{len(odd)} path(s) listed in {where} are not regular files: {_first_five(odd)}. "
            "Images are never read from a FIFO, socket, device or folder: point the listing "
            "to the image files themselves."
        )


def _first_five(lines: list[str]) -> str:
    more = f" … and {len(lines) - 5} more" if len(lines) > 5 else ""
    return ", ".join(lines[:5]) + more


def missing_images(paths: Iterable[str | None]) -> list[str]:
    """The paths (ignoring None) that do not exist, in order."""
    return [p for p in paths if p is not None and not os.path.exists(p)]


def not_regular_files(paths: Iterable[str | None]) -> list[str]:
    """ "path (kind)" for each existing path (ignoring None) that is not a regular file, in order."""
    kinds = ((p, file_kind(p)) for p in paths if p is not None)
    return [f"{p} ({kind})" for p, kind in kinds if kind not in ("file", "missing")]
