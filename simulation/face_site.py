"""A site of face terminals for ``bench_face`` and the fleet's tests, generated fast (simulation/sitegen.py's writers).

Doors, cardholders and their cards come from :func:`sitegen.generate`; on top:

- people in ``groups`` groups of equal size (person i, the i-th cardholder by id,
  is in group ``i * groups // people``); each door but the last ``everyone_doors``
  belongs to one group in turn and admits that group's people through the
  group's access level; the last ``everyone_doors`` admit everyone (a level
  every cardholder holds). At 100,000 people, 1,000 doors and 100 groups: 990
  doors admit 1,000 people each, 10 doors admit all 100,000;
- for every cardholder a live :class:`FaceConsent` and one :class:`FaceTemplate`:
  an enrolment capture of person i (simulation/synthetic_faces.py, ``seed``)
  sealed with :func:`accesscontrol.faces.seal_vector`;
- for every door a face terminal (a ``face_terminal`` :class:`Device` and its
  :class:`FaceTerminal`, id ``face-<n>``) taking face only and card + face.

The rows go in bulk, so no signals fire: a single "everything changed" rule
change tells running snapshots and face galleries to reload.
"""

import math
import time
from dataclasses import dataclass

from django.db import transaction

from accesscontrol.faces import FACE_MODELS, seal_vector
from accesscontrol.models import AccessLevel, AccessLevelEntry, Cardholder, FaceConsent, FaceTemplate, Key
from accesscontrol.rulechanges import record_everything
from devices.choices import DeviceKind
from devices.models import FaceTerminal
from simulation import sitegen
from simulation.face_terminals import TerminalPlan
from simulation.synthetic_faces import NOISE, Population

MODEL = "xs4face-v1"
CHUNK = 10_000  # enrolment captures made and sealed at a time (a 100,000 x 512 matrix is 200 MB)
FIRST_DEVICE_ID = 50_000
ENROLMENT_QUALITY = 0.9


@dataclass(frozen=True)
class FaceSiteSpec:
    people: int = 100_000
    terminals: int = 1_000
    groups: int = 100
    everyone_doors: int | None = None  # None: one door in a hundred, at least one
    seed: int = 1
    noise: float = NOISE


@dataclass
class FaceSite:
    terminals: tuple[TerminalPlan, ...]  # in door order, with the people each door admits
    cards: tuple[str, ...]  # person i's card UID
    names: dict  # a cardholder's name -> person index (what an enrol command names)
    holders: tuple[int, ...]  # person i's cardholder id
    counts: dict

    @property
    def allowed_per_door(self) -> float:
        people = len(self.cards)
        sizes = [people if plan.allowed is None else plan.allowed[1] - plan.allowed[0] for plan in self.terminals]
        return sum(sizes) / len(sizes)


def probes(spec: FaceSiteSpec) -> Population:
    """The site's people, for fresh captures: the enrolled identities, with noise drawn apart from the enrolments'."""
    return Population(spec.people, FACE_MODELS[MODEL], noise=spec.noise, seed=spec.seed, capture_seed=spec.seed + 1)


def everyone_doors(spec: FaceSiteSpec) -> int:
    if spec.everyone_doors is not None:
        return min(spec.everyone_doors, spec.terminals)
    return max(1, spec.terminals // 100)


def group_bounds(group: int, groups: int, people: int) -> tuple[int, int]:
    """The people of ``group``: a half-open range of person indices (person i is in group i * groups // people)."""
    return math.ceil(group * people / groups), math.ceil((group + 1) * people / groups)


def generate(spec: FaceSiteSpec) -> FaceSite:
    """Fill an empty database with the face site ``spec`` describes; see the module's text."""
    started = time.perf_counter()
    site = sitegen.generate(
        sitegen.SiteSpec(
            seed=spec.seed,
            prefix="face",
            access_points=spec.terminals,
            online_share=1.0,
            cardholders=spec.people,
            keys_per_cardholder=1,
        )
    )
    doors, wide = site.points, everyone_doors(spec)
    group_doors = len(doors) - wide
    groups = max(1, min(spec.groups, group_doors, spec.people)) if group_doors else 0
    holders = list(Cardholder.objects.order_by("id").values_list("id", flat=True))
    with transaction.atomic():
        door_groups = [index % groups if index < group_doors else None for index in range(len(doors))]
        levels = _levels(doors, door_groups, groups)
        memberships = sitegen.insert_rows(
            Cardholder.access_levels.through,
            ["cardholder_id", "accesslevel_id"],
            (
                (holder, level.pk)
                for person, holder in enumerate(holders)
                for level in (levels.get(person * groups // spec.people) if groups else None, levels[None])
                if level is not None
            ),
        )
        terminals = _terminals(doors)
    templates = _enrol(spec, holders)
    cards = dict(Key.objects.values_list("cardholder_id", "uid"))
    record_everything()
    plans = tuple(
        TerminalPlan(terminal_id, None if group is None else group_bounds(group, groups, spec.people))
        for terminal_id, group in zip(terminals, door_groups, strict=True)
    )
    names = {f"Holder {person}": person for person in range(spec.people)}  # sitegen's names
    counts = {
        "cardholders": site.counts["cardholders"],
        "keys": site.counts["keys"],
        "access_points": len(doors),
        "access_levels": len(levels),
        "access_level_memberships": memberships,
        "groups": groups,
        "everyone_doors": wide,
        "face_templates": templates,
        "face_terminals": len(terminals),
        "generate_s": round(time.perf_counter() - started, 1),
    }
    return FaceSite(plans, tuple(cards[holder] for holder in holders), names, tuple(holders), counts)


def _levels(doors, door_groups, groups: int) -> dict:
    """An access level per group granting its doors, and one (key None) for everyone granting the rest."""
    levels = {group: AccessLevel(name=f"face group {group}") for group in range(groups)}
    levels[None] = AccessLevel(name="face everyone")
    AccessLevel.objects.bulk_create(levels.values())
    AccessLevelEntry.objects.bulk_create(
        [
            AccessLevelEntry(access_level=levels[group], access_point=door)
            for door, group in zip(doors, door_groups, strict=True)
        ],
        batch_size=sitegen.BATCH,
    )
    return levels


def _terminals(doors) -> list[str]:
    ids = [f"face-{number}" for number in range(len(doors))]
    devices = sitegen.make_devices(
        (FIRST_DEVICE_ID + number, f"Face terminal {terminal_id}", DeviceKind.FACE_TERMINAL, "", None, False)
        for number, terminal_id in enumerate(ids)
    )
    FaceTerminal.objects.bulk_create(
        [
            FaceTerminal(device=device, terminal_id=terminal_id, access_point=door, face_only=True, card_and_face=True)
            for device, terminal_id, door in zip(devices, ids, doors, strict=True)
        ],
        batch_size=sitegen.BATCH,
    )
    return ids


def _enrol(spec: FaceSiteSpec, holders: list[int]) -> int:
    """A consent and one sealed enrolment capture per cardholder (person i = ``holders[i]``)."""
    stamp = sitegen.timestamp_formatter()
    now = stamp(time.time())
    population = Population(spec.people, FACE_MODELS[MODEL], noise=spec.noise, seed=spec.seed)
    sitegen.insert_rows(FaceConsent, ["cardholder_id", "given_at"], ((holder, now) for holder in holders))

    def rows():
        for start in range(0, len(holders), CHUNK):
            captures = population.captures(range(start, min(start + CHUNK, len(holders))))
            for holder, vector in zip(holders[start : start + CHUNK], captures, strict=True):
                yield (holder, MODEL, vector.shape[0], seal_vector(vector, holder), ENROLMENT_QUALITY)

    return sitegen.insert_rows(
        FaceTemplate, ["cardholder_id", "model_name", "dimension", "vector_sealed", "quality"], rows()
    )
