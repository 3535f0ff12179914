"""Face terminals and captures for the enrolment, web and API tests."""

import itertools

import numpy as np

from accesscontrol import faces
from devices import actions
from tests.factories import make_access_point

MODEL = "xs4face-v1"
DIMENSION = faces.FACE_MODELS[MODEL]
_numbers = itertools.count(1)


def make_terminal(access_point=None, operator=None, **options):
    """A commissioned face terminal (through the action), guarding a new door unless one is given."""
    terminal_id = options.pop("terminal_id", None) or f"T-{next(_numbers)}"
    return actions.commission_face_terminal(
        name=options.pop("name", f"Face {terminal_id}"),
        terminal_id=terminal_id,
        access_point=access_point or make_access_point(),
        operator=operator,
        via="test",
        **options,
    )


def capture(seed: int = 1, quality: float | None = 0.9, model: str = MODEL, dimension: int = DIMENSION):
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return faces.Capture(model, vector.tolist(), quality)
