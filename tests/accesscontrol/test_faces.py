"""Face biometrics: consent, sealed templates, erasure, and the in-memory matcher (docs/face-matching.md).

Faces are synthetic (simulation/synthetic_faces.py): one random unit vector per
person, noise per capture; genuine captures score about 0.6, strangers about 0
with a standard deviation of 0.044 at 512 dimensions.
"""

import threading

import numpy as np
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accesscontrol import actions, faces
from accesscontrol.facematch import Gallery, GalleryStore, face_threshold
from accesscontrol.models import FaceTemplate, SystemAuditEntry
from simulation.synthetic_faces import Population
from tests.factories import make_access_point, make_cardholder, make_operator

MODEL = "xs4face-v1"
DIMENSION = faces.FACE_MODELS[MODEL]
THRESHOLD = settings.SPACE_FACE_THRESHOLD


def enrol(cardholder, vector, operator=None):
    return faces.store_template(cardholder, faces.Capture(MODEL, vector, 0.9, "T-1"), operator=operator, via="test")


@pytest.fixture
def population():
    return Population(200, DIMENSION, seed=7)


# --- consent, sealing, erasure (the database) -------------------------------------------------


@pytest.mark.django_db
def test_a_template_is_sealed_at_rest_and_opens_as_the_unit_vector(population):
    alice = make_cardholder()
    faces.record_consent(alice, operator=make_operator(), via="test")
    vector = population.capture(0) * 3.0  # not unit: stored normalised

    template = enrol(alice, vector)

    with connection.cursor() as cursor:
        cursor.execute("SELECT vector_sealed FROM accesscontrol_facetemplate WHERE id = %s", [template.pk])
        stored = bytes(cursor.fetchone()[0])
    unit = (vector / np.linalg.norm(vector)).astype("<f4")
    assert unit.tobytes() not in stored
    assert unit[:4].tobytes() not in stored
    assert np.allclose(faces.template_vector(FaceTemplate.objects.get(pk=template.pk)), unit, atol=1e-6)
    assert template.dimension == DIMENSION and template.source_terminal == "T-1"


@pytest.mark.django_db
def test_a_sealed_template_copied_to_another_cardholder_does_not_open(population):
    alice, bob = make_cardholder(), make_cardholder()
    faces.record_consent(alice, operator=None, via="test")
    template = enrol(alice, population.capture(0))
    with pytest.raises(faces.vault.VaultError):
        faces.unseal_vector(template.vector_sealed, bob.pk)


@pytest.mark.django_db
def test_no_template_without_consent_nor_after_withdrawal(population):
    alice = make_cardholder()
    with pytest.raises(ValidationError, match="not consented"):
        enrol(alice, population.capture(0))
    operator = make_operator()
    consent = faces.record_consent(alice, operator=operator, via="test")
    assert consent.given_by == operator and consent.withdrawn_at is None
    assert faces.record_consent(alice, operator=operator, via="test") == consent  # once is enough
    enrol(alice, population.capture(0))
    enrol(alice, population.capture(0))

    erased = faces.withdraw_consent(alice, operator=operator, via="test")

    assert erased == 2
    assert not FaceTemplate.objects.filter(cardholder=alice).exists()
    consent.refresh_from_db()
    assert consent.withdrawn_at is not None and consent.withdrawn_by == operator
    entry = SystemAuditEntry.objects.filter(action="face consent withdrawn").get()
    assert entry.object_id == str(alice.pk) and entry.detail["face_templates_erased"] == 2
    with pytest.raises(ValidationError, match="not consented"):
        enrol(alice, population.capture(0))


@pytest.mark.django_db
@pytest.mark.parametrize("remove", ["deactivate", "delete"])
def test_deactivating_or_deleting_a_cardholder_erases_their_templates(population, remove):
    alice, bob = make_cardholder(), make_cardholder()
    for person, cardholder in enumerate((alice, bob)):
        faces.record_consent(cardholder, operator=None, via="test")
        enrol(cardholder, population.capture(person))
    store = GalleryStore(MODEL)
    assert store.refresh().identify(population.capture(0), None, THRESHOLD).cardholder_id == alice.pk

    if remove == "deactivate":
        actions.deactivate_cardholder(alice, operator=None, via="test")
    else:
        actions.delete_cardholder(alice, operator=None, via="test")

    assert not FaceTemplate.objects.filter(cardholder_id=alice.pk).exists()
    assert FaceTemplate.objects.filter(cardholder_id=bob.pk).count() == 1
    gallery = store.refresh()
    assert store.full_builds == 1
    assert gallery.identify(population.capture(0), None, THRESHOLD) is None
    assert gallery.identify(population.capture(1), None, THRESHOLD).cardholder_id == bob.pk
    assert SystemAuditEntry.objects.filter(action=remove).get().detail["face_templates_erased"] == 1


@pytest.mark.django_db
def test_no_api_shows_templates(api_admin, population):
    alice = make_cardholder()
    faces.record_consent(alice, operator=None, via="test")
    enrol(alice, population.capture(0))

    cardholder = api_admin.get(f"/api/v1/cardholders/{alice.pk}/")
    schema = api_admin.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert cardholder.status_code == 200 and schema.status_code == 200
    assert "face" not in cardholder.content.decode().lower()
    assert "facetemplate" not in schema.content.decode().lower() and "vector" not in schema.content.decode().lower()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "vector", "message"),
    [
        (MODEL, [0.1] * (DIMENSION - 1), "has 512 values, not 511"),
        (MODEL, [0.1] * (DIMENSION - 1) + [float("nan")], "not a finite number"),
        (MODEL, [0.1] * (DIMENSION - 1) + [float("inf")], "not a finite number"),
        (MODEL, [0.0] * DIMENSION, "all zeros"),
        (MODEL, ["x"] * DIMENSION, "list of numbers"),
        (MODEL, [[0.1] * DIMENSION], "has 512 values"),
        ("other-model", [0.1] * DIMENSION, "Unknown face model"),
    ],
)
def test_bad_templates_are_refused_with_a_clear_error(model, vector, message):
    alice = make_cardholder()
    faces.record_consent(alice, operator=None, via="test")
    with pytest.raises(ValidationError, match=message):
        faces.store_template(alice, faces.Capture(model, vector), via="test")
    assert not FaceTemplate.objects.exists()


@pytest.mark.django_db
def test_the_site_threshold_unless_the_access_point_sets_its_own():
    assert face_threshold(make_access_point().face_threshold) == THRESHOLD
    assert face_threshold(make_access_point(face_threshold=0.55).face_threshold) == 0.55


@pytest.mark.django_db
def test_incremental_refresh_sees_an_added_and_a_removed_template(population):
    alice, bob = make_cardholder(), make_cardholder()
    for cardholder in (alice, bob):
        faces.record_consent(cardholder, operator=None, via="test")
    enrol(alice, population.capture(0))
    store = GalleryStore(MODEL)
    gallery = store.refresh()
    assert len(gallery) == 1
    assert gallery.identify(population.capture(1), None, THRESHOLD) is None

    enrol(bob, population.capture(1))
    gallery = store.refresh()
    assert len(gallery) == 2
    assert gallery.identify(population.capture(1), None, THRESHOLD).cardholder_id == bob.pk

    faces.withdraw_consent(bob, operator=None, via="test")
    make_access_point()  # another kind's change in between is skipped
    gallery = store.refresh()
    assert len(gallery) == 1
    assert gallery.identify(population.capture(1), None, THRESHOLD) is None
    assert gallery.verify(population.capture(0), alice.pk, THRESHOLD).cardholder_id == alice.pk
    assert store.full_builds == 1


# --- the matcher (pure numpy) ----------------------------------------------------------------


def gallery_of(population, people, templates_each=2):
    gallery = Gallery(population.dimension)
    for person in people:
        gallery.add(1000 + person, population.captures([person] * templates_each))
    return gallery


def test_identify_finds_the_genuine_person_only_among_the_allowed(population):
    gallery = gallery_of(population, range(100))
    allowed = [1000 + person for person in range(0, 100, 2)]  # the even ones may open this door

    for person in range(0, 100, 2):
        match = gallery.identify(population.capture(person), allowed, THRESHOLD)
        assert match is not None and match.cardholder_id == 1000 + person and match.score > THRESHOLD
    for person in range(1, 100, 2):
        assert gallery.identify(population.capture(person), allowed, THRESHOLD) is None
        assert gallery.identify(population.capture(person), None, THRESHOLD).cardholder_id == 1000 + person
    assert gallery.identify(population.capture(0), [], THRESHOLD) is None
    assert gallery.identify(population.capture(0), np.array([1002, 99999]), THRESHOLD) is None


def test_an_allowed_sets_rows_are_kept_copied_out_until_the_gallery_changes(population):
    gallery = gallery_of(population, range(40))
    door = np.array([1000 + person for person in range(10)])
    same_people_elsewhere = door.copy()  # another door, the same access level
    assert gallery.identify(population.capture(3), door, THRESHOLD).cardholder_id == 1003
    assert gallery.identify(population.capture(4), same_people_elsewhere, THRESHOLD).cardholder_id == 1004
    assert len(gallery._subsets) == 1 and gallery._subset_bytes == 20 * population.dimension * 4

    gallery.replace(1003, population.captures([25]))  # 1003's face is now 25's: the copy is stale
    assert gallery.identify(population.capture(3), door, THRESHOLD) is None
    assert gallery.identify(population.capture(25), door, THRESHOLD).cardholder_id == 1003
    gallery.remove(1004)
    assert gallery.identify(population.capture(4), door, THRESHOLD) is None


def test_the_copied_out_rows_stay_within_their_budget(population, monkeypatch):
    gallery = gallery_of(population, range(100), templates_each=1)
    one_door = 10 * population.dimension * 4
    monkeypatch.setattr("accesscontrol.facematch.SUBSET_BYTES", 3 * one_door)
    for door in range(10):
        people = np.arange(1000 + 10 * door, 1010 + 10 * door)
        match = gallery.identify(population.capture(10 * door + 5), people, THRESHOLD)
        assert match.cardholder_id == 1005 + 10 * door
        assert gallery._subset_bytes <= 3 * one_door
    assert len(gallery._subsets) == 3


def test_identify_refuses_impostors(population):
    gallery = gallery_of(population, range(200))
    for probe in population.impostors(200):
        assert gallery.identify(probe, None, THRESHOLD) is None


def test_verify_is_one_to_one(population):
    gallery = gallery_of(population, range(10))
    assert gallery.verify(population.capture(3), 1003, THRESHOLD).cardholder_id == 1003
    assert gallery.verify(population.capture(4), 1003, THRESHOLD) is None
    assert gallery.verify(population.impostors(1)[0], 1003, THRESHOLD) is None
    assert gallery.verify(population.capture(3), 5555, THRESHOLD) is None
    gallery.remove(1003)
    assert gallery.verify(population.capture(3), 1003, THRESHOLD) is None


def test_removed_rows_are_zeroed_and_compacted_away():
    population = Population(300, DIMENSION, seed=5)
    gallery = Gallery(population.dimension, capacity=4)
    for person in range(300):
        gallery.add(person, population.captures([person] * 10))
    rows = list(gallery._rows[0])
    for person in range(0, 300, 3):
        gallery.remove(person)
    assert len(gallery) == 2000 and gallery.cardholders == 200 and gallery._size == 3000  # 1,000 rows free
    assert not gallery._matrix[rows].any()  # erased from memory too
    for person in range(1, 300, 3):
        gallery.remove(person)  # past 1,024 rows free: compacted
    assert len(gallery) == 1000 and gallery._size < 3000
    for person in range(300):
        match = gallery.identify(population.capture(person), None, THRESHOLD)
        assert (match.cardholder_id if match else None) == (person if person % 3 == 2 else None)
        assert (gallery.verify(population.capture(person), person, THRESHOLD) is not None) == (person % 3 == 2)


def test_readers_need_no_lock_while_a_writer_adds_removes_and_compacts():
    population = Population(400, DIMENSION, seed=11)
    gallery = gallery_of(population, range(100), templates_each=1)  # 1000..1099 stay throughout
    probes = population.captures(np.arange(100))
    churn = [(1000 + person, population.captures([person] * 20)) for person in range(100, 400)]
    errors = []

    def writer():
        try:
            for _ in range(3):  # 300 people x 20 rows in and out: grows and compacts several times
                for cardholder_id, vectors in churn:
                    gallery.add(cardholder_id, vectors)
                for cardholder_id, _ in churn:
                    gallery.remove(cardholder_id)
        except Exception as error:
            errors.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    answers = 0
    while thread.is_alive() or answers == 0:
        person = answers % 100
        assert gallery.identify(probes[person], None, THRESHOLD).cardholder_id == 1000 + person
        assert gallery.verify(probes[person], 1000 + person, THRESHOLD) is not None
        answers += 1
    thread.join()
    assert not errors and len(gallery) == 100


@hypothesis_settings(max_examples=40, deadline=None)  # a shared machine: no timing in a property
@given(
    probes=st.lists(st.tuples(st.integers(0, 59), st.booleans(), st.sets(st.integers(0, 59))), min_size=1, max_size=12)
)
def test_identify_many_answers_as_one_by_one(probes):
    population = Population(60, 64, noise=0.6, seed=3)
    gallery = gallery_of(population, range(50))  # 50..59 are enrolled nowhere
    vectors = np.stack([population.capture(person) for person, _, _ in probes])
    allowed = [None if everyone else [1000 + person for person in people] for _, everyone, people in probes]

    batched = gallery.identify_many(vectors, allowed, 0.5)

    singles = [gallery.identify(vector, one, 0.5) for vector, one in zip(vectors, allowed, strict=True)]
    assert [match and match.cardholder_id for match in batched] == [match and match.cardholder_id for match in singles]
    for match, single in zip(batched, singles, strict=True):
        assert match is None or match.score == pytest.approx(single.score, abs=1e-5)
