"""Cardholder photos: real images made with Pillow, checked, turned upright, stripped of metadata and resized;
refused with a reason; kept as private files; shown on the cardholder page, through the API and in the monitor."""

import datetime as dt
import io
import struct
import zlib

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from accesscontrol import actions, events, housekeeping, live, photos
from accesscontrol.models import Cardholder, SystemAuditEntry
from accesscontrol.photofiles import photo_storage, thumbnail_name
from tests.factories import make_access_point, make_cardholder, make_operator, make_partition
from tests.support.photos import BLUE, RED, camera_jpeg, encoded, files, marked, noisy_jpeg, plain_jpeg

pytestmark = pytest.mark.django_db

VIEW = "accesscontrol.view_cardholder"
CHANGE = "accesscontrol.change_cardholder"


@pytest.fixture(autouse=True)
def photo_dir(settings, tmp_path):
    settings.SPACE_PHOTO_DIR = tmp_path / "photos"
    return settings.SPACE_PHOTO_DIR


# --- images, made here ------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb(side: int = 12_000) -> bytes:
    """A real PNG of side x side grey pixels, all black: some kilobytes on disk, 144 megapixels decoded."""
    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte, then the row
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def png_header_only(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def close(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


# --- normalising ------------------------------------------------------------------------------------------


def test_a_camera_photo_is_turned_upright_by_its_exif_orientation():
    photo = photos.normalise(camera_jpeg(orientation=6))

    image = opened(photo.image)
    # 800x600 stored, "rotate 90 clockwise to show": upright it is 600x800, fitted into 480x480.
    assert image.size == (360, 480)
    assert close(image.getpixel((image.width - 10, 10)), BLUE)
    assert close(image.getpixel((10, 10)), RED)


def test_every_piece_of_metadata_is_stripped():
    sent = camera_jpeg()
    assert b"Acme Camera Works" in sent and b"Secret Person" in sent and b"back door" in sent

    photo = photos.normalise(sent)

    for data in (photo.image, photo.thumbnail):
        image = opened(data)
        assert image.format == "JPEG"
        assert dict(image.getexif()) == {}
        assert not {"exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"} & set(image.info)
        for trace in (b"Exif\x00\x00", b"ICC_PROFILE", b"Acme Camera Works", b"Secret Person", b"back door", b"adobe"):
            assert trace not in data


def test_a_photo_is_resized_to_fit_and_gets_a_thumbnail():
    photo = photos.normalise(plain_jpeg((3000, 2000)))

    assert opened(photo.image).size == (480, 320)
    assert opened(photo.thumbnail).size == (96, 64)
    assert photo.source.startswith("JPEG 3000x2000, ")


def test_a_small_photo_is_not_enlarged():
    assert opened(photos.normalise(plain_jpeg((200, 150))).image).size == (200, 150)


def test_a_transparent_png_is_laid_on_white():
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    image.paste((*RED, 255), (100, 100, 200, 200))

    photo = opened(photos.normalise(encoded(image, "PNG")).image)

    assert photo.mode == "RGB"
    assert close(photo.getpixel((5, 5)), (255, 255, 255), tolerance=6)
    assert close(photo.getpixel((150, 150)), RED)


@pytest.mark.parametrize("kind", ["WEBP", "GIF", "PNG"])
def test_other_accepted_formats_become_jpeg(kind):
    image = marked((320, 240)).convert("P") if kind == "GIF" else marked((320, 240))

    photo = opened(photos.normalise(encoded(image, kind)).image)

    assert photo.format == "JPEG"
    assert photo.size == (320, 240)


def test_the_first_frame_of_an_animated_gif_is_taken():
    frames = [Image.new("P", (100, 100), colour) for colour in (1, 2, 3)]
    frames[0].putpalette([0, 0, 0, *BLUE, *RED, 0, 255, 0] + [0] * (256 - 4) * 3)
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])

    photo = opened(photos.normalise(data).image)

    assert close(photo.getpixel((50, 50)), BLUE)


def test_the_same_picture_gives_the_same_version():
    assert photos.normalise(plain_jpeg()).digest == photos.normalise(plain_jpeg()).digest
    assert photos.normalise(plain_jpeg()).digest != photos.normalise(plain_jpeg((500, 400))).digest


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b"Dear HR, here is my photo.\n", "not an image Space reads"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not an image Space reads"),
        (plain_jpeg()[:600], "damaged or incomplete"),
        (png_header_only(9_000, 7_000), "at most 50 megapixels"),
        (png_header_only(20, 400), "at least 32 each way"),
        (png_header_only(30_000, 30_000), "too many pixels"),
    ],
    ids=["empty", "text", "pdf", "truncated", "too many pixels", "too small", "far too many pixels"],
)
def test_what_is_no_acceptable_image_is_refused_with_its_reason(data, message):
    with pytest.raises(photos.PhotoError, match=message):
        photos.normalise(data)


def test_a_bmp_or_tiff_is_refused_though_pillow_reads_it():
    for kind in ("BMP", "TIFF"):
        with pytest.raises(photos.PhotoError, match="JPEG, PNG, WebP or GIF"):
            photos.normalise(encoded(marked((100, 100)), kind))


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    bomb = decompression_bomb()
    assert len(bomb) < 300_000

    with pytest.raises(photos.PhotoError, match="too many pixels"):
        photos.normalise(bomb)


def test_a_photo_over_the_size_limit_is_refused(settings):
    settings.SPACE_PHOTO_MAX_BYTES = 100_000
    data = noisy_jpeg()
    assert len(data) > 100_000

    with pytest.raises(photos.PhotoError, match=r"at most 98 KB is accepted"):
        photos.normalise(data)


# --- the actions ------------------------------------------------------------------------------------------


def test_set_photo_stores_both_files_and_records_it(photo_dir):
    holder = make_cardholder()
    operator = make_operator(is_superuser=True)

    holder = photos.set_photo(holder, camera_jpeg(), operator=operator, via="web", address="192.0.2.9")

    stored = Cardholder.objects.get(pk=holder.pk)
    assert stored.photo.name == holder.photo.name
    assert stored.photo_updated_at is not None
    assert files(photo_dir) == sorted([stored.photo.name, thumbnail_name(stored.photo.name)])
    entry = SystemAuditEntry.objects.get(action="set_photo")
    assert entry.object_id == str(holder.pk)
    assert entry.operator == operator
    assert entry.address == "192.0.2.9"
    assert entry.detail["photo"] == {"from": None, "to": stored.photo_version}
    assert entry.detail["sent"].startswith("JPEG 800x600")


def test_a_new_photo_replaces_the_old_files_once_committed(photo_dir, django_capture_on_commit_callbacks):
    holder = make_cardholder()
    with django_capture_on_commit_callbacks(execute=True):
        first = photos.set_photo(holder, plain_jpeg(), operator=None, via="api").photo.name
    with django_capture_on_commit_callbacks(execute=True):
        second = photos.set_photo(holder, plain_jpeg((500, 400)), operator=None, via="api").photo.name

    assert first != second
    assert files(photo_dir) == sorted([second, thumbnail_name(second)])
    detail = SystemAuditEntry.objects.filter(action="set_photo").order_by("id").last().detail
    assert detail["photo"]["from"] == first.rsplit("-", 1)[1].removesuffix(".jpg")


def test_a_refused_photo_changes_nothing(photo_dir):
    holder = make_cardholder()
    photos.set_photo(holder, plain_jpeg(), operator=None, via="api")
    before = files(photo_dir), SystemAuditEntry.objects.count()

    with pytest.raises(photos.PhotoError):
        photos.set_photo(holder, b"not a photo", operator=None, via="api")

    assert (files(photo_dir), SystemAuditEntry.objects.count()) == before


def test_files_a_rollback_left_are_swept_an_hour_later(photo_dir):
    holder = make_cardholder()
    kept = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api").photo.name
    with pytest.raises(RuntimeError), transaction.atomic():
        photos.set_photo(holder, plain_jpeg((500, 400)), operator=None, via="api")
        raise RuntimeError("the caller's own work failed after the photo was written")
    assert Cardholder.objects.get(pk=holder.pk).photo.name == ""
    assert len(files(photo_dir)) == 4

    assert housekeeping.purge()["photo_files"] == 0  # not an hour old: its transaction may still commit
    assert housekeeping.purge(timezone.now() + dt.timedelta(minutes=61))["photo_files"] == 2

    assert files(photo_dir) == sorted([kept, thumbnail_name(kept)])


def test_remove_photo_removes_the_files_once_committed(photo_dir, django_capture_on_commit_callbacks):
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")

    with django_capture_on_commit_callbacks(execute=True):
        photos.remove_photo(holder, operator=None, via="web")

    stored = Cardholder.objects.get(pk=holder.pk)
    assert (stored.photo.name, stored.photo_updated_at) == ("", None)
    assert files(photo_dir) == []
    assert SystemAuditEntry.objects.filter(action="remove_photo").count() == 1


def test_removing_no_photo_records_nothing():
    photos.remove_photo(make_cardholder(), operator=None, via="web")

    assert not SystemAuditEntry.objects.filter(action="remove_photo").exists()


def test_the_photo_from_a_source_says_whether_it_changed_and_records_nothing():
    holder = make_cardholder()

    assert photos.set_photo_from_source(holder, camera_jpeg()) is True
    assert photos.set_photo_from_source(holder, camera_jpeg()) is False
    with pytest.raises(photos.PhotoError):
        photos.set_photo_from_source(holder, b"\x00" * 64)

    assert Cardholder.objects.get(pk=holder.pk).photo
    assert not SystemAuditEntry.objects.exists()


def test_deleting_a_cardholder_removes_their_photo_after_the_commit(photo_dir, django_capture_on_commit_callbacks):
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")
    assert files(photo_dir)

    with django_capture_on_commit_callbacks(execute=True):
        actions.delete_cardholder(holder, operator=None, via="web")

    assert files(photo_dir) == []


def test_the_photo_folder_is_no_public_url():
    with pytest.raises(ValueError, match="no public URL"):
        photo_storage.url("00/1-abc.jpg")


# --- the web app ------------------------------------------------------------------------------------------


def client_for(operator) -> Client:
    client = Client(REMOTE_ADDR="192.0.2.7")
    client.force_login(operator)
    return client


def upload(client, holder, data: bytes, name="face.jpg"):
    url = reverse("cardholder_photo_upload", args=[holder.pk])
    return client.post(url, {"photo": io.BytesIO(data) if not name else named(data, name)})


def named(data: bytes, name: str):
    file = io.BytesIO(data)
    file.name = name
    return file


def test_an_operator_uploads_a_photo_and_sees_it_on_the_page(django_capture_on_commit_callbacks):
    partition = make_partition()
    holder = make_cardholder(partition=partition, first_name="Maja", last_name="Lindqvist")
    client = client_for(make_operator(VIEW, CHANGE, partitions=[partition]))

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, holder, camera_jpeg())

    assert response.status_code == 302
    holder.refresh_from_db()
    page = client.get(reverse("cardholder", args=[holder.pk])).content.decode()
    photo_url = f"/cardholders/{holder.pk}/photo/?v={holder.photo_version}"
    assert f'src="{photo_url}" alt="Photo of Maja Lindqvist"' in page
    served = client.get(photo_url)
    assert served.status_code == 200
    assert served["Content-Type"] == "image/jpeg"
    assert served["Cache-Control"] == "private, max-age=31536000, immutable"
    assert served["ETag"] == f'"{holder.photo_version}"'
    assert opened(b"".join(served.streaming_content)).size == (360, 480)
    thumbnail = client.get(reverse("cardholder_photo_thumbnail", args=[holder.pk]))
    assert thumbnail["Cache-Control"] == "private, no-cache"
    assert opened(b"".join(thumbnail.streaming_content)).size == (72, 96)
    assert SystemAuditEntry.objects.get(action="set_photo").via == "web"


def test_a_browser_that_has_the_photo_is_told_so():
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")
    client = client_for(make_operator(is_superuser=True))

    response = client.get(reverse("cardholder_photo", args=[holder.pk]), HTTP_IF_NONE_MATCH=f'"{holder.photo_version}"')

    assert response.status_code == 304


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"Not a photo at all, just text.\n", "not an image Space reads"), (noisy_jpeg(), "at most 98 KB")],
    ids=["text renamed .jpg", "too large"],
)
def test_a_bad_file_is_a_form_error_and_changes_nothing(settings, data, message):
    settings.SPACE_PHOTO_MAX_BYTES = 100_000
    holder = make_cardholder()
    client = client_for(make_operator(is_superuser=True))

    response = upload(client, holder, data, name="face.jpg")

    assert response.status_code == 400
    assert message in " ".join(response.context["photo_form"].errors["photo"])
    assert Cardholder.objects.get(pk=holder.pk).photo.name == ""
    assert not SystemAuditEntry.objects.exists()


def test_an_upload_without_a_file_is_a_form_error():
    holder = make_cardholder()

    response = client_for(make_operator(is_superuser=True)).post(reverse("cardholder_photo_upload", args=[holder.pk]))

    assert response.status_code == 400
    assert response.context["photo_form"].errors["photo"]


def test_an_operator_of_another_partition_gets_a_404_for_the_photo():
    mine, theirs = make_partition(), make_partition()
    holder = photos.set_photo(make_cardholder(partition=theirs), plain_jpeg(), operator=None, via="api")
    client = client_for(make_operator(VIEW, CHANGE, partitions=[mine]))

    assert client.get(reverse("cardholder_photo", args=[holder.pk])).status_code == 404
    assert client.get(reverse("cardholder_photo_thumbnail", args=[holder.pk])).status_code == 404
    assert upload(client, holder, plain_jpeg((500, 400))).status_code == 404
    assert client.post(reverse("cardholder_photo_remove", args=[holder.pk])).status_code == 404
    assert Cardholder.objects.get(pk=holder.pk).photo.name == holder.photo.name


def test_an_operator_who_may_only_view_cannot_change_the_photo():
    partition = make_partition()
    holder = make_cardholder(partition=partition)
    client = client_for(make_operator(VIEW, partitions=[partition]))

    response = upload(client, holder, plain_jpeg())

    assert response.status_code == 403
    assert Cardholder.objects.get(pk=holder.pk).photo.name == ""
    page = client.get(reverse("cardholder", args=[holder.pk])).content.decode()
    assert "No photo" in page
    assert "Upload photo" not in page


def test_no_photo_is_a_404():
    holder = make_cardholder()

    response = client_for(make_operator(is_superuser=True)).get(reverse("cardholder_photo", args=[holder.pk]))

    assert response.status_code == 404


def test_the_operator_removes_a_photo_from_the_page(django_capture_on_commit_callbacks, photo_dir):
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")
    client = client_for(make_operator(is_superuser=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("cardholder_photo_remove", args=[holder.pk]))

    assert response.status_code == 302
    assert Cardholder.objects.get(pk=holder.pk).photo.name == ""
    assert files(photo_dir) == []


def test_the_admin_shows_the_thumbnail_read_only():
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")
    client = client_for(make_operator(is_superuser=True, is_staff=True))

    page = client.get(reverse("admin:accesscontrol_cardholder_change", args=[holder.pk])).content.decode()

    assert f'<img src="/cardholders/{holder.pk}/photo/thumbnail/?v={holder.photo_version}"' in page
    assert 'type="file"' not in page


# --- the REST API -----------------------------------------------------------------------------------------


def api_client(operator) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


def api_url(holder) -> str:
    return f"/api/v1/cardholders/{holder.pk}/photo/"


def test_the_api_puts_gets_and_deletes_a_photo(django_capture_on_commit_callbacks, photo_dir):
    holder = make_cardholder()
    client = api_client(make_operator(is_superuser=True))

    put = client.put(api_url(holder), {"photo": named(camera_jpeg(), "face.jpg")}, format="multipart")
    got = client.get(api_url(holder))
    small = client.get(api_url(holder), {"size": "thumbnail"})
    listed = client.get(f"/api/v1/cardholders/{holder.pk}/").json()
    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.delete(api_url(holder))
    gone = client.get(api_url(holder))

    assert put.status_code == 200, put.content
    assert listed["photo_updated_at"] == put.json()["updated_at"]
    version = Cardholder.objects.filter(pk=holder.pk).values_list("photo", flat=True).get() or put.json()["version"]
    assert put.json()["cardholder"] == holder.pk
    assert put.json()["version"] in version
    assert got.status_code == 200
    assert got["Content-Type"] == "image/jpeg"
    assert got["ETag"] == f'"{put.json()["version"]}"'
    assert opened(b"".join(got.streaming_content)).size == (360, 480)
    assert opened(b"".join(small.streaming_content)).size == (72, 96)
    assert deleted.status_code == 204
    assert gone.status_code == 404
    assert files(photo_dir) == []
    assert [entry.via for entry in SystemAuditEntry.objects.order_by("id")] == ["api", "api"]


def test_the_api_takes_the_image_as_the_body():
    holder = make_cardholder()
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))

    response = api_client(make_operator(is_superuser=True)).put(
        api_url(holder), encoded(image, "PNG"), content_type="image/png"
    )

    assert response.status_code == 200, response.content
    assert Cardholder.objects.get(pk=holder.pk).photo


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (encoded(marked(), "PNG")[:300], "image/png", "damaged or incomplete"),
        (b"hello", "image/jpeg", "not an image Space reads"),
        (None, "multipart", "Send the image"),
        ("text", "multipart", "Send the image"),
    ],
    ids=["truncated png", "text as jpeg", "no field", "a text field"],
)
def test_a_bad_photo_through_the_api_is_a_400_naming_the_field(body, content_type, message):
    holder = make_cardholder()
    client = api_client(make_operator(is_superuser=True))

    if content_type == "multipart":
        response = client.put(api_url(holder), {} if body is None else {"photo": body}, format="multipart")
    else:
        response = client.put(api_url(holder), body, content_type=content_type)

    assert response.status_code == 400
    assert message in response.json()["photo"][0]
    assert Cardholder.objects.get(pk=holder.pk).photo.name == ""


def test_a_photo_over_the_limit_through_the_api_is_a_400(settings):
    settings.SPACE_PHOTO_MAX_BYTES = 100_000
    holder = make_cardholder()

    response = api_client(make_operator(is_superuser=True)).put(
        api_url(holder), noisy_jpeg(), content_type="image/jpeg"
    )

    assert response.status_code == 400
    assert "at most 98 KB" in response.json()["photo"][0]


def test_json_is_no_photo_body_and_an_unknown_size_is_a_400():
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")
    client = api_client(make_operator(is_superuser=True))

    assert client.put(api_url(holder), {"photo": "x"}, format="json").status_code == 415
    response = client.get(api_url(holder), {"size": "huge"})
    assert response.status_code == 400
    assert "size" in response.json()


def test_the_api_keeps_an_operator_to_their_partitions():
    mine, theirs = make_partition(), make_partition()
    holder = photos.set_photo(make_cardholder(partition=theirs), plain_jpeg(), operator=None, via="api")
    own = photos.set_photo(make_cardholder(partition=mine), plain_jpeg(), operator=None, via="api")
    client = api_client(make_operator(VIEW, CHANGE, partitions=[mine]))
    viewer = api_client(make_operator(VIEW, partitions=[mine]))

    assert client.get(api_url(holder)).status_code == 404
    assert client.put(api_url(holder), plain_jpeg((500, 400)), content_type="image/jpeg").status_code == 404
    assert client.delete(api_url(holder)).status_code == 404
    assert viewer.get(api_url(own)).status_code == 200
    assert viewer.delete(api_url(own)).status_code == 403
    assert viewer.put(api_url(own), plain_jpeg((500, 400)), content_type="image/jpeg").status_code == 403
    assert APIClient().get(api_url(own)).status_code == 401
    assert Cardholder.objects.get(pk=holder.pk).photo.name == holder.photo.name
    assert Cardholder.objects.get(pk=own.pk).photo.name == own.photo.name


def test_the_photo_is_in_the_openapi_schema():
    from drf_spectacular.generators import SchemaGenerator

    operations = SchemaGenerator().get_schema(request=None, public=True)["paths"]["/api/v1/cardholders/{id}/photo/"]

    assert set(operations) >= {"get", "put", "delete"}
    assert "image/jpeg" in operations["get"]["responses"]["200"]["content"]
    assert {"multipart/form-data", "image/jpeg", "image/png"} <= set(operations["put"]["requestBody"]["content"])
    assert "400" in operations["put"]["responses"]


# --- the live monitor -------------------------------------------------------------------------------------


def test_an_access_event_in_the_monitor_carries_the_cardholder_thumbnail(django_capture_on_commit_callbacks):
    point = make_access_point()
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")
    faceless = make_cardholder()

    with live.collect() as items, django_capture_on_commit_callbacks(execute=True):
        for who in (holder, faceless):
            events.record(
                at=timezone.now(),
                kind="access_granted",
                access_point=point,
                access_point_name=point.name,
                cardholder=who,
                cardholder_name=str(who),
            )

    by_holder = {item["cardholder"]: item for item in items}
    thumbnail = f"/cardholders/{holder.pk}/photo/thumbnail/?v={holder.photo_version}"
    assert by_holder[holder.pk]["cardholder_photo"] == thumbnail
    assert "cardholder_photo" not in by_holder[faceless.pk]


def test_the_monitor_page_shows_the_thumbnails_of_its_first_events():
    point = make_access_point()
    holder = photos.set_photo(make_cardholder(), plain_jpeg(), operator=None, via="api")
    events.record(at=timezone.now(), kind="access_granted", access_point=point, cardholder=holder)

    page = client_for(make_operator(is_superuser=True)).get(reverse("monitor")).content.decode()

    assert f'class="monitor-photo" src="/cardholders/{holder.pk}/photo/thumbnail/?v={holder.photo_version}"' in page
