"""Images made with Pillow for the photo tests: a phone's JPEG with every kind of metadata, plain ones, noise."""

import io
import random

from PIL import ExifTags, Image, ImageCms

BLUE = (20, 40, 220)
RED = (220, 30, 30)


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def marked(size=(800, 600)) -> Image.Image:
    """Red, with its top-left quarter blue: where that quarter ends up shows how the image was turned."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (0, 0, size[0] // 2, size[1] // 2))
    return image


def camera_jpeg(orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: EXIF with the camera, an orientation and a GPS position; ICC, XMP, a comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Acme Camera Works"
    exif[ExifTags.Base.Model] = "Pocketshot 9"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (59.0, 19.0, 47.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (18.0, 4.0, 5.0),
    }
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description by="Secret Person"/></rdf:RDF></x:xmpmeta>'
    return encoded(marked(), "JPEG", exif=exif, icc_profile=icc, comment=b"taken at the back door", xmp=xmp, quality=95)


def plain_jpeg(size=(640, 480)) -> bytes:
    return encoded(marked(size), "JPEG")


def noisy_jpeg(size=(400, 400)) -> bytes:
    """A JPEG that does not compress: for the size limit."""
    noise = random.Random(7).randbytes(size[0] * size[1] * 3)
    return encoded(Image.frombytes("RGB", size, noise), "JPEG", quality=100)


def files(root) -> list[str]:
    """The photo files under ``root`` (not the folder's lock file, nor a half-written file)."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("[!.]*") if path.is_file())
