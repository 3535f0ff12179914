"""Synthetic faces: one random unit vector per person, noise per capture (docs/face-matching.md).

A person's *identity* is a random direction in d dimensions; a *capture* of them
(at enrolment or at a terminal) is that direction plus Gaussian noise of norm
about ``noise`` (per component ``noise / sqrt(d)``), normalised. Two captures of
one person then score about ``1 / (1 + noise**2)`` (0.6 at the default 0.82),
while two different people score about N(0, 1/d) (a standard deviation of 0.044
at 512 dimensions): what face models' cosine scores look like, roughly.
"""

import numpy as np

DIMENSION = 512
NOISE = 0.82  # a capture's noise norm relative to the identity: genuine scores ~0.6


class Population:
    def __init__(
        self, people: int, dimension: int = DIMENSION, *, noise: float = NOISE, seed: int = 1, capture_seed=None
    ):
        """``capture_seed``: the captures' noise from a generator of its own (the same people, other captures than
        those of a population made with ``seed`` alone: a terminal's captures are not the enrolments')."""
        self.rng = np.random.default_rng(seed)
        self.dimension = dimension
        self.noise = noise
        self.identities = self._unit(self.rng.standard_normal((people, dimension), dtype=np.float32))
        if capture_seed is not None:
            self.rng = np.random.default_rng(capture_seed)

    @staticmethod
    def _unit(array: np.ndarray) -> np.ndarray:
        return (array / np.linalg.norm(array, axis=1, keepdims=True)).astype(np.float32)

    def captures(self, people) -> np.ndarray:
        """One fresh capture of each person in ``people`` (indices), as (len(people), d) unit rows."""
        people = np.atleast_1d(np.asarray(people))
        sigma = self.noise / np.sqrt(self.dimension)
        noise = self.rng.standard_normal((len(people), self.dimension), dtype=np.float32) * np.float32(sigma)
        return self._unit(self.identities[people] + noise)

    def capture(self, person: int) -> np.ndarray:
        return self.captures([person])[0]

    def impostors(self, count: int) -> np.ndarray:
        """Captures of ``count`` people who are nobody enrolled."""
        return Population(count, self.dimension, noise=self.noise, seed=int(self.rng.integers(1 << 31))).captures(
            np.arange(count)
        )
