"""Face biometrics' business rules: consent, enrolment of templates, erasure (docs/face-matching.md).

Every entrance (web app, API, face terminals) calls these. A template is a float32
vector of the terminal's face model (:data:`FACE_MODELS` gives each model's
dimension); it is stored unit-normalised and sealed under the master key
(``core.vault``, purpose ``face-template:<cardholder id>``: a sealed vector copied
onto another cardholder's row does not open there), and never serialised by any
API. Templates are refused without a live consent, and erased when consent is
withdrawn or the cardholder deactivated or deleted
(:func:`accesscontrol.actions.erase_face_templates`, the one place they go).
"""

import math
from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accesscontrol import actions
from accesscontrol.models import Cardholder, FaceConsent, FaceTemplate
from accesscontrol.rulechanges import record_rule_changes
from core import vault

# The face models Space knows, and the dimension of each one's templates.
FACE_MODELS = {"xs4face-v1": 512}
DTYPE = np.dtype("<f4")  # little-endian float32, the bytes sealed


def template_purpose(cardholder_id: int) -> str:
    return f"face-template:{cardholder_id}"


def normalised(vector, model_name: str) -> np.ndarray:
    """``vector`` as a unit float32 array of ``model_name``'s dimension; ValidationError when it cannot be one."""
    dimension = FACE_MODELS.get(model_name)
    if dimension is None:
        raise ValidationError({"model": f"Unknown face model {model_name!r}; known: {', '.join(sorted(FACE_MODELS))}."})
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError({"template": "The template must be a list of numbers."}) from None
    if array.ndim != 1 or array.shape[0] != dimension:
        raise ValidationError({"template": f"A {model_name} template has {dimension} values, not {array.size}."})
    if not np.all(np.isfinite(array)):
        raise ValidationError({"template": "The template holds a value that is not a finite number."})
    norm = float(np.linalg.norm(array))
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValidationError({"template": "The template is all zeros."})
    return (array / norm).astype(DTYPE)


def seal_vector(vector: np.ndarray, cardholder_id: int) -> bytes:
    return vault.seal(np.ascontiguousarray(vector, dtype=DTYPE).tobytes(), template_purpose(cardholder_id))


def unseal_vector(sealed: bytes, cardholder_id: int) -> np.ndarray:
    return np.frombuffer(vault.unseal(sealed, template_purpose(cardholder_id)), dtype=DTYPE)


def template_vector(template: FaceTemplate) -> np.ndarray:
    """The template's unit vector (opened from the vault)."""
    return unseal_vector(template.vector_sealed, template.cardholder_id)


def live_consent(cardholder: Cardholder) -> FaceConsent | None:
    return FaceConsent.objects.filter(cardholder_id=cardholder.pk, withdrawn_at=None).first()


def record_consent(cardholder: Cardholder, *, operator, via: str, at=None, address: str | None = None) -> FaceConsent:
    """Record that ``cardholder`` consents to face matching (given through ``operator``); once is enough."""
    with transaction.atomic():
        cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
        consent = live_consent(cardholder)
        if consent is not None:
            return consent
        given_by = operator if getattr(operator, "is_authenticated", False) else None
        consent = FaceConsent.objects.create(cardholder=cardholder, given_at=at or timezone.now(), given_by=given_by)
        detail = {"consent": consent.pk, "given_at": consent.given_at.isoformat()}
        actions.record_operator_action(operator, "face consent", cardholder, via=via, detail=detail, address=address)
    return consent


def withdraw_consent(cardholder: Cardholder, *, operator, via: str, at=None, address: str | None = None) -> int:
    """Withdraw ``cardholder``'s consent and erase every template of theirs; returns how many were erased."""
    with transaction.atomic():
        cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
        now = at or timezone.now()
        withdrawn_by = operator if getattr(operator, "is_authenticated", False) else None
        withdrawn = FaceConsent.objects.filter(cardholder=cardholder, withdrawn_at=None).update(
            withdrawn_at=now, withdrawn_by=withdrawn_by
        )
        erased = actions.erase_face_templates(cardholder)
        detail = {"withdrawn_at": now.isoformat(), "consents_withdrawn": withdrawn, "face_templates_erased": erased}
        actions.record_operator_action(
            operator, "face consent withdrawn", cardholder, via=via, detail=detail, address=address
        )
    return erased


@dataclass(frozen=True)
class Capture:
    """A template as a terminal sends it."""

    model_name: str
    vector: object  # a sequence of numbers
    quality: float | None = None
    source_terminal: str = ""


def store_template(cardholder: Cardholder, capture: Capture, *, operator=None, via: str) -> FaceTemplate:
    """Seal and store ``capture`` for ``cardholder``: refused (ValidationError) without a live consent or when bad."""
    vector = normalised(capture.vector, capture.model_name)
    quality = capture.quality
    if quality is not None and (not isinstance(quality, int | float) or not math.isfinite(quality)):
        raise ValidationError({"quality": "The quality score must be a finite number."})
    with transaction.atomic():
        cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
        if live_consent(cardholder) is None:
            raise ValidationError({"cardholder": "This cardholder has not consented to face matching."})
        template = FaceTemplate.objects.create(
            cardholder=cardholder,
            model_name=capture.model_name,
            dimension=vector.shape[0],
            vector_sealed=seal_vector(vector, cardholder.pk),
            quality=quality,
            source_terminal=str(capture.source_terminal)[:64],
        )
        record_rule_changes(actions.FACE_TEMPLATE_CHANGE, [cardholder.pk])
        detail = {"template": template.pk, "model": capture.model_name, "terminal": template.source_terminal}
        actions.record_operator_action(operator, "face enrolled", cardholder, via=via, detail=detail)
    return template


def load_templates(model_name: str, cardholder_ids=None) -> tuple[np.ndarray, np.ndarray]:
    """Open the templates of ``model_name`` (of ``cardholder_ids``, None: everyone's) for a gallery.

    Returns ``(owners, matrix)``: an int64 array of cardholder ids and an (N, d) float32 matrix.
    """
    rows = FaceTemplate.objects.filter(model_name=model_name)
    if cardholder_ids is not None:
        rows = rows.filter(cardholder_id__in=list(cardholder_ids))
    dimension = FACE_MODELS[model_name]
    owners, vectors = [], []
    for cardholder_id, sealed in rows.order_by("id").values_list("cardholder_id", "vector_sealed").iterator(5000):
        owners.append(cardholder_id)
        vectors.append(unseal_vector(sealed, cardholder_id))
    matrix = np.vstack(vectors) if vectors else np.empty((0, dimension), dtype=DTYPE)
    return np.asarray(owners, dtype=np.int64), matrix
