"""Cardholder photos: checked and normalised with Pillow, kept as files under SPACE_PHOTO_DIR.

Every photo, uploaded by an operator (web app, API) or read from a directory or
an HR feed, goes through :func:`normalise`. It is refused with a
:class:`PhotoError` that says why unless it is a real image of an accepted
format within the byte and pixel limits; otherwise it is turned upright from
its EXIF orientation, converted to sRGB, resized to fit ``PHOTO_SIZE`` and
written again as a JPEG that carries no metadata at all (no EXIF, so no GPS
position or camera serial number; no ICC profile, XMP or comment), with a
``THUMBNAIL_SIZE`` thumbnail for lists and the live monitor.

Files are named by their content's digest (accesscontrol/photofiles.py):
a new photo is written (atomically) beside the old one, the row then names it,
and the old files go once that commits. The digest is the photo's version: it is
in the photo's URLs, so a browser may keep a photo, and it is the photo's ETag.
"""

import datetime as dt
import hashlib
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from accesscontrol import photofiles
from accesscontrol.actions import record_operator_action
from accesscontrol.models import Cardholder
from accesscontrol.photofiles import (
    delete_photo_files,
    photo_name,
    photo_storage,
    photo_version,
    thumbnail_name,
)
from core.files import write_atomically

# What Pillow may decode: only these plugins are tried, so a file is never parsed by a decoder nobody needs.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
# 50 megapixels: above any camera a badge photo comes from, below what a few hundred MB of memory decodes.
MAX_PIXELS = 50_000_000
MIN_SIDE = 32
PHOTO_SIZE = (480, 480)
THUMBNAIL_SIZE = (96, 96)
PHOTO_QUALITY = 85
THUMBNAIL_QUALITY = 80
WHITE = (255, 255, 255, 255)
SRGB = ImageCms.createProfile("sRGB")
ORPHAN_AGE = dt.timedelta(hours=1)


class PhotoError(ValueError):
    """A photo that is refused, with the reason in words an operator acts on."""


@dataclass(frozen=True)
class Photo:
    image: bytes  # JPEG, at most PHOTO_SIZE, no metadata
    thumbnail: bytes  # JPEG, at most THUMBNAIL_SIZE, no metadata
    digest: str  # of ``image``: the photo's version
    source: str  # what was sent, for the system auditor: "PNG 3000x4000, 1.2 MB"


# --- checking and normalising ------------------------------------------------------------------------


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:.1f} MB" if count >= 1024 * 1024 else f"{max(1, round(count / 1024))} KB"


def normalise(data: bytes) -> Photo:
    """Check ``data`` is a photo Space accepts and make its stored form; raises PhotoError saying why not."""
    limit = settings.SPACE_PHOTO_MAX_BYTES
    if not data:
        raise PhotoError("The file is empty.")
    if len(data) > limit:
        raise PhotoError(f"The photo is {_size(len(data))}; at most {_size(limit)} is accepted.")
    try:
        with warnings.catch_warnings():
            # Pillow's own decompression-bomb guard warns at its limit and raises at twice it: both refuse here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            source = f"{image.format} {image.width}x{image.height}, {_size(len(data))}"
            _check_dimensions(image.width, image.height)
            if image.format == "JPEG":
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale: a 12-megapixel photo costs what a small one does.
                image.draft("RGB", PHOTO_SIZE)  # the scale that stays at least PHOTO_SIZE
            image.load()  # a GIF or an animated WebP: its first frame
            icc = image.info.get("icc_profile")
            image = ImageOps.exif_transpose(image)
            image = _rgb(image, icc)
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(f"The image has too many pixels (more than {MAX_PIXELS // 1_000_000} megapixels).") from None
    except UnidentifiedImageError:
        raise PhotoError("This file is not an image Space reads: send a JPEG, PNG, WebP or GIF photo.") from None
    except Exception:
        # A damaged file makes Pillow's decoders raise many kinds of error (OSError, SyntaxError, struct.error,
        # ValueError, ...): each one means the same to the operator.
        raise PhotoError("The image is damaged or incomplete and cannot be read.") from None
    image.thumbnail(PHOTO_SIZE, Image.Resampling.LANCZOS)
    # A new image from the pixels alone: nothing of the original's metadata (info, EXIF, comment) can follow.
    clean = Image.frombytes("RGB", image.size, image.tobytes())
    photo = _jpeg(clean, PHOTO_QUALITY)
    clean.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    thumbnail = _jpeg(clean, THUMBNAIL_QUALITY)
    return Photo(photo, thumbnail, hashlib.sha256(photo).hexdigest()[:20], source)


def _check_dimensions(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise PhotoError(
            f"The image is {width}x{height} pixels; at most {MAX_PIXELS // 1_000_000} megapixels are accepted."
        )
    if min(width, height) < MIN_SIDE:
        raise PhotoError(f"The image is {width}x{height} pixels; at least {MIN_SIDE} each way is needed.")


def _rgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """The image in sRGB, transparency laid on white (a PNG's transparent background is not black)."""
    if icc and image.mode in ("RGB", "CMYK", "L"):
        try:
            return ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a profile that does not load: the pixels as they are
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba)
    elif image.mode.startswith("I;16") or image.mode == "I":
        image = image.point(lambda value: value * (1 / 256)).convert("L")  # 16-bit grey to 8-bit
    return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


# --- the actions ----------------------------------------------------------------------------------------


def set_photo(holder: Cardholder, data: bytes, *, operator, via: str, address: str | None = None) -> Cardholder:
    """Give ``holder`` the photo in ``data`` (raises PhotoError when it is refused), in the system auditor."""
    photo = normalise(data)
    with transaction.atomic():
        holder, before = _replace(holder, photo)
        detail = {"photo": {"from": photo_version(before) or None, "to": photo.digest}, "sent": photo.source}
        record_operator_action(operator, "set_photo", holder, via=via, detail=detail, address=address)
    return holder


def remove_photo(holder: Cardholder, *, operator, via: str, address: str | None = None) -> Cardholder:
    """Remove ``holder``'s photo (its files go once this commits); nothing is recorded when there was none."""
    with transaction.atomic():
        holder, before = _replace(holder, None)
        if before:
            detail = {"photo": {"from": photo_version(before), "to": None}}
            record_operator_action(operator, "remove_photo", holder, via=via, detail=detail, address=address)
    return holder


def set_photo_from_source(holder: Cardholder, data: bytes) -> bool:
    """A directory's or HR feed's photo for ``holder``; whether it changed the stored photo.

    Raises PhotoError on a photo that is refused. The caller (the sync core) records the run in the
    system auditor, not this function.
    """
    photo = normalise(data)
    with transaction.atomic():
        holder, before = _replace(holder, photo)
    return holder.photo.name != before


def _replace(holder: Cardholder, photo: Photo | None) -> tuple[Cardholder, str]:
    """Within a transaction: make ``photo`` (None: none) the cardholder's; returns it (locked) and the name it had.

    A rollback removes the files just written; a commit removes the old ones.
    """
    holder = Cardholder.objects.select_for_update().get(pk=holder.pk)
    before = holder.photo.name
    name = photo_name(holder.pk, photo.digest) if photo is not None else ""
    if name == before:
        return holder, before
    wrote = False
    try:
        with transaction.atomic():
            if photo is not None:
                root = Path(photo_storage.location)
                write_atomically(root / name, photo.image)
                wrote = True
                write_atomically(root / thumbnail_name(name), photo.thumbnail)
            now = timezone.now()
            changed_at = now if photo is not None else None
            # Not save(): a photo is no rule data, so the rules snapshot is not told to reload the cardholder.
            Cardholder.objects.filter(pk=holder.pk).update(photo=name, photo_updated_at=changed_at, updated_at=now)
    except BaseException:
        if wrote:
            delete_photo_files(name)
        raise
    holder.photo.name, holder.photo_updated_at = name, changed_at
    transaction.on_commit(lambda: (delete_photo_files(before), thumbnails.forget(holder.pk)))
    return holder, before


def sweep_orphans(now: dt.datetime | None = None) -> int:
    """Remove photo files no cardholder names once they are an hour old; returns how many went.

    A photo is written before the row names it: a transaction that rolled back after writing it (the
    caller's, around the action) or a crash between the two leaves its files behind. The hour spares
    a photo whose transaction has not committed yet.
    """
    folder = photofiles.root()
    if not folder.is_dir():
        return 0
    cutoff = ((now or timezone.now()) - ORPHAN_AGE).timestamp()
    removed = 0
    with photofiles.deleting() as may:
        if not may:
            return 0  # a backup is copying the folder: next hour
        named = set(Cardholder.objects.exclude(photo="").values_list("photo", flat=True))
        kept = {photofiles.LOCK_NAME} | named | {thumbnail_name(name) for name in named}
        for path in folder.rglob("*"):
            if path.is_file() and path.relative_to(folder).as_posix() not in kept and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# --- where a browser finds them -------------------------------------------------------------------------


def photo_url(holder_id: int, name: str) -> str:
    return f"{reverse('cardholder_photo', args=[holder_id])}?v={photo_version(name)}"


def thumbnail_url(holder_id: int, name: str) -> str:
    return f"{reverse('cardholder_photo_thumbnail', args=[holder_id])}?v={photo_version(name)}"


def thumbnail_urls(holder_ids) -> dict[int, str]:
    """The thumbnail URL of each of these cardholders that has a photo (one query)."""
    rows = Cardholder.objects.filter(pk__in=set(holder_ids)).exclude(photo="").values_list("pk", "photo")
    return {pk: thumbnail_url(pk, name) for pk, name in rows}


class _Thumbnails:
    """Cardholder id -> thumbnail URL (None: no photo), for the live monitor's items; kept a minute.

    The monitor's batches come many times a second: a photo set or removed in another process shows there
    within the minute (this process forgets at once), and a URL that has just gone only fails to load.
    """

    TTL_SECONDS = 60.0

    def __init__(self):
        self.urls: dict[int, str | None] = {}
        self.loaded_at = time.monotonic()

    def forget(self, holder_id: int) -> None:
        self.urls.pop(holder_id, None)

    def clear(self) -> None:
        self.urls.clear()
        self.loaded_at = time.monotonic()

    def add_to(self, payloads: list[dict]) -> list[dict]:
        """``payloads`` with ``cardholder_photo`` (a thumbnail URL) on each audit event of a cardholder with a photo.

        Items are copied, not changed: other sinks hold the same dicts, and webhooks send no monitor URLs.
        """
        if time.monotonic() - self.loaded_at > self.TTL_SECONDS:
            self.clear()
        urls = self.urls
        missing = {
            item["cardholder"]
            for item in payloads
            if item.get("type") == "audit_event" and item.get("cardholder") and item["cardholder"] not in urls
        }
        if missing:
            found = thumbnail_urls(missing)
            urls.update({pk: found.get(pk) for pk in missing})
        return [
            {**item, "cardholder_photo": urls[item["cardholder"]]}
            if item.get("type") == "audit_event" and urls.get(item.get("cardholder"))
            else item
            for item in payloads
        ]


thumbnails = _Thumbnails()
