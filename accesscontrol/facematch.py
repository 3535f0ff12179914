"""Face matching in memory: a gallery of templates searched with numpy (docs/face-matching.md).

:class:`Gallery` is pure numpy, no Django: an (N, d) float32 matrix of unit
vectors and, per row, the cardholder it belongs to. Scores are cosine
similarities (dot products of unit vectors); a face matches at or above the
threshold (``SPACE_FACE_THRESHOLD``, or the access point's ``face_threshold``).

- :meth:`Gallery.identify`: 1:N among only the cardholders allowed (say, those who
  may open that door now), their rows gathered by a vectorised mask;
- :meth:`Gallery.verify`: 1:1 against one cardholder's templates (card + face);
- :meth:`Gallery.identify_many`: concurrent requests batched into one matrix product.

Rows are appended; a removed cardholder's rows are zeroed and marked free (owner
-1) and the matrix is compacted once they are many. Readers take no lock: a
writer publishes the matrix and owners (views of the rows in use) as one
attribute after each change, and grows or compacts into new arrays; a reader
keeps the pair it started with.

:class:`GalleryStore` builds the gallery from the sealed templates once and then
follows the RuleChange rows naming cardholders whose templates changed
(:data:`accesscontrol.actions.FACE_TEMPLATE_CHANGE`), as the rules snapshot does
(accesscontrol/snapshot.py), reloading only those cardholders.
"""

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

DTYPE = np.float32
FREE = -1  # the owner of a row no template uses
GATHER_SHARE = 0.3  # allowed rows are copied out and searched when fewer than this share of all rows
TABLE_LIMIT = 50_000_000  # cardholder ids up to this are masked through a lookup table, past it with np.isin
SUBSET_BYTES = 256 * 2**20  # the allowed sets' rows kept copied out, least recently used dropped past this
SUBSET_KEYS = 4096


@dataclass(frozen=True)
class Match:
    cardholder_id: int
    score: float


def _unit_rows(probes) -> np.ndarray:
    """``probes`` (d,) or (B, d) as a (B, d) float32 array of unit rows (a zero probe stays zero: it matches none)."""
    array = np.atleast_2d(np.asarray(probes, dtype=DTYPE))
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[~(norms > 0) | ~np.isfinite(norms)] = np.inf
    return np.ascontiguousarray(array / norms, dtype=DTYPE)


def _ids(allowed) -> np.ndarray:
    return np.fromiter(allowed, dtype=np.int64) if not isinstance(allowed, np.ndarray) else allowed.astype(np.int64)


class Gallery:
    """Templates of one face model, in memory."""

    def __init__(self, dimension: int, capacity: int = 1024):
        self.dimension = dimension
        self._lock = threading.Lock()
        self._matrix = np.zeros((max(capacity, 1), dimension), dtype=DTYPE)
        self._owners = np.full(max(capacity, 1), FREE, dtype=np.int64)
        self._size = 0  # rows in use or freed; rows past it are spare
        self._rows: dict[int, list[int]] = {}
        self._free = 0
        self._top = 0  # the highest cardholder id ever added
        self._subsets: OrderedDict[bytes, tuple] = OrderedDict()  # content key -> (owners view, rows, row owners)
        self._subset_keys: dict[int, tuple] = {}  # id(allowed) -> (allowed, content key)
        self._subset_bytes = 0
        self._subset_lock = threading.Lock()
        self._publish()

    @classmethod
    def of(cls, owners, matrix) -> "Gallery":
        """A gallery of ``matrix``'s rows ((N, d), normalised here), row i belonging to cardholder ``owners[i]``."""
        owners = np.asarray(owners, dtype=np.int64)
        matrix = _unit_rows(matrix) if len(owners) else np.empty((0, np.shape(matrix)[-1]), dtype=DTYPE)
        gallery = cls(matrix.shape[1], capacity=max(1024, len(owners) + len(owners) // 8))
        gallery._matrix[: len(owners)] = matrix
        gallery._owners[: len(owners)] = owners
        gallery._size = len(owners)
        gallery._top = int(owners.max(initial=0))
        for row, owner in enumerate(owners.tolist()):
            gallery._rows.setdefault(owner, []).append(row)
        gallery._publish()
        return gallery

    # --- writing (one writer at a time) ----------------------------------------------

    def __len__(self) -> int:
        return self._size - self._free

    @property
    def cardholders(self) -> int:
        return len(self._rows)

    def add(self, cardholder_id: int, vectors) -> None:
        """Append ``cardholder_id``'s templates ((k, d) or (d,), normalised here)."""
        vectors = _unit_rows(vectors)
        if vectors.shape[1] != self.dimension:
            raise ValueError(f"templates of dimension {vectors.shape[1]} in a gallery of {self.dimension}")
        with self._lock:
            count = vectors.shape[0]
            if self._size + count > self._matrix.shape[0]:
                self._grow(self._size + count)
            matrix, owners, start = self._matrix, self._owners, self._size
            self._top = max(self._top, cardholder_id)  # before the owners: readers' lookup tables must hold them
            matrix[start : start + count] = vectors
            owners[start : start + count] = cardholder_id  # after the vectors: a reader never sees a row half-written
            self._size = start + count
            self._rows.setdefault(cardholder_id, []).extend(range(start, start + count))
            self._publish()

    def remove(self, cardholder_id: int) -> int:
        """Forget ``cardholder_id``'s templates (zeroed in memory); returns how many."""
        with self._lock:
            rows = self._rows.pop(cardholder_id, [])
            if rows:
                self._owners[rows] = FREE
                self._matrix[rows] = 0.0
                self._free += len(rows)
                if self._free > max(1024, self._size // 4):
                    self._compact()
                self._publish()  # new views: copies made of the old ones (allowed sets' rows) are stale now
            return len(rows)

    def replace(self, cardholder_id: int, vectors) -> None:
        self.remove(cardholder_id)
        if len(vectors):
            self.add(cardholder_id, vectors)

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self._matrix.shape[0])
        matrix = np.zeros((capacity, self.dimension), dtype=DTYPE)
        owners = np.full(capacity, FREE, dtype=np.int64)
        matrix[: self._size] = self._matrix[: self._size]
        owners[: self._size] = self._owners[: self._size]
        self._matrix, self._owners = matrix, owners

    def _compact(self) -> None:
        keep = np.flatnonzero(self._owners[: self._size] != FREE)
        capacity = max(1024, 2 * len(keep))
        matrix = np.zeros((capacity, self.dimension), dtype=DTYPE)
        owners = np.full(capacity, FREE, dtype=np.int64)
        matrix[: len(keep)] = self._matrix[keep]
        owners[: len(keep)] = self._owners[keep]
        rows: dict[int, list[int]] = {}
        for row, owner in enumerate(owners[: len(keep)].tolist()):
            rows.setdefault(owner, []).append(row)
        self._matrix, self._owners, self._size, self._rows, self._free = matrix, owners, len(keep), rows, 0

    # --- reading (no lock) -------------------------------------------------------------

    def _publish(self) -> None:
        # One attribute, swapped whole: a reader gets a matrix and owners that agree, rows added later unseen.
        self._published = (self._matrix[: self._size], self._owners[: self._size])

    def _view(self) -> tuple[np.ndarray, np.ndarray]:
        return self._published

    def _mask(self, owners: np.ndarray, allowed) -> np.ndarray:
        """A boolean mask of the rows of the allowed cardholders (None: everyone's), in O(rows + allowed)."""
        if allowed is None:
            return owners != FREE
        ids = _ids(allowed)
        top = self._top
        if top > TABLE_LIMIT:
            return np.isin(owners, ids)
        table = np.zeros(top + 2, dtype=bool)  # table[-1], a free row's, stays False
        table[ids[(ids >= 0) & (ids <= top)]] = True
        return table[owners]

    def identify(self, probe, allowed: Iterable[int] | None, threshold: float) -> Match | None:
        """1:N: the allowed cardholder whose template is nearest ``probe``, if it scores at least ``threshold``."""
        return self.identify_many([probe], [allowed], threshold)[0]

    def identify_many(self, probes, allowed: list, threshold: float | list[float]) -> list[Match | None]:
        """:meth:`identify` for each probe (``allowed[i]`` for ``probes[i]``) in one matrix product."""
        probes = _unit_rows(probes)
        count = probes.shape[0]
        thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (count,))
        if len(allowed) != count:
            raise ValueError(f"{count} probes and {len(allowed)} allowed sets")
        matrix, owners = self._view()
        first = allowed[0] if count else None
        if first is not None and all(one is first for one in allowed):
            subset = self._subset(first, matrix, owners)
            if subset is not None:
                return self._best(subset[0] @ probes.T, subset[1], thresholds)
        everyone = None
        made: dict[int, np.ndarray] = {}  # one mask per allowed set: probes at one door share theirs
        masks = []
        for one in allowed:
            if one is None:
                everyone = self._mask(owners, None) if everyone is None else everyone
                masks.append(everyone)
            else:
                mask = made.get(id(one))
                if mask is None:
                    mask = made[id(one)] = self._mask(owners, one)
                masks.append(mask)
        if everyone is not None:
            union = everyone
        elif len(made) == 1:
            union = masks[0]
        else:
            union = np.logical_or.reduce(list(made.values()))
        rows = np.flatnonzero(union)
        if rows.size == 0:
            return [None] * count
        if rows.size > owners.size * GATHER_SHARE:
            # Most rows: reading the whole matrix once costs less than copying those rows out of it first.
            rows = np.arange(owners.size)
            scores = matrix @ probes.T  # (rows, probes)
            for column, mask in enumerate(masks):
                if mask is not everyone:
                    scores[~mask, column] = -np.inf
        else:
            scores = matrix[rows] @ probes.T
            if count > 1:
                for column, mask in enumerate(masks):
                    if mask is not union:
                        scores[~mask[rows], column] = -np.inf
        return self._best(scores, owners[rows], thresholds)

    @staticmethod
    def _best(scores: np.ndarray, row_owners: np.ndarray, thresholds) -> list[Match | None]:
        """Per probe (column of ``scores``), the best row's owner if it reaches the probe's threshold."""
        if scores.shape[0] == 0:
            return [None] * scores.shape[1]
        best = np.argmax(scores, axis=0)
        results = []
        for column in range(scores.shape[1]):
            score = float(scores[best[column], column])
            owner = int(row_owners[best[column]])
            matched = score >= thresholds[column] and owner != FREE
            results.append(Match(owner, score) if matched else None)
        return results

    def _subset(self, allowed, matrix: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The rows of the ``allowed`` cardholders copied out contiguously, and their owners; None when they are
        most of the gallery (reading it whole is cheaper).

        Copying a door's rows out costs more than searching them, and a site has few distinct allowed sets
        (doors share access levels), so the copies are kept by content, least recently used dropped past
        :data:`SUBSET_BYTES`, until the gallery changes."""
        with self._subset_lock:
            known = self._subset_keys.get(id(allowed))
            if known is not None and known[0] is allowed:
                key = known[1]
            else:
                key = hashlib.blake2b(np.ascontiguousarray(_ids(allowed)).tobytes(), digest_size=16).digest()
                if len(self._subset_keys) >= SUBSET_KEYS:
                    del self._subset_keys[next(iter(self._subset_keys))]
                self._subset_keys[id(allowed)] = (allowed, key)  # holds ``allowed``: its id is not reused
            found = self._subsets.get(key)
            if found is not None and found[0] is owners:
                self._subsets.move_to_end(key)
                return found[1], found[2]
        rows = np.flatnonzero(self._mask(owners, allowed))
        if rows.size > owners.size * GATHER_SHARE:
            return None
        subset = (owners, np.ascontiguousarray(matrix[rows]), owners[rows])
        with self._subset_lock:
            old = self._subsets.pop(key, None)
            if old is not None:
                self._subset_bytes -= old[1].nbytes
            self._subsets[key] = subset
            self._subset_bytes += subset[1].nbytes
            while self._subset_bytes > SUBSET_BYTES and len(self._subsets) > 1:
                _, dropped = self._subsets.popitem(last=False)
                self._subset_bytes -= dropped[1].nbytes
        return subset[1], subset[2]

    def enrolled(self, cardholder_id: int) -> bool:
        """Whether ``cardholder_id`` has a template here."""
        return cardholder_id in self._rows

    def best_score(self, probe, cardholder_id: int) -> float | None:
        """``probe``'s best score against ``cardholder_id``'s templates (None: they have none), for the record."""
        matrix, owners = self._view()
        rows = np.flatnonzero(owners == cardholder_id)
        return float(np.max(matrix[rows] @ _unit_rows(probe)[0])) if rows.size else None

    def verify(self, probe, cardholder_id: int, threshold: float) -> Match | None:
        """1:1: ``probe`` against ``cardholder_id``'s templates; a Match (best score) if it reaches ``threshold``."""
        matrix, owners = self._view()
        rows = np.flatnonzero(owners == cardholder_id)  # tens of microseconds at 100,000 rows
        if rows.size == 0:
            return None
        score = float(np.max(matrix[rows] @ _unit_rows(probe)[0]))
        return Match(cardholder_id, score) if score >= threshold else None


class GalleryStore:
    """A :class:`Gallery` of one face model built from the database and kept current by ``refresh()``."""

    def __init__(self, model_name: str, *, max_changes: int = 20000, gap_seconds: float = 300):
        from accesscontrol import faces  # Django and the vault, only to load

        self.model_name = model_name
        self.dimension = faces.FACE_MODELS[model_name]
        self.max_changes = max_changes
        self.gap_seconds = gap_seconds  # on PostgreSQL a change id can commit after a higher one was read
        self._lock = threading.Lock()
        self._gallery: Gallery | None = None
        self._last_change_id = 0
        self._gaps: dict[int, float] = {}
        self.full_builds = 0

    @property
    def gallery(self) -> Gallery:
        gallery = self._gallery
        return gallery if gallery is not None else self.refresh()

    def rebuild(self) -> Gallery:
        with self._lock:
            return self._rebuild()

    def refresh(self) -> Gallery:
        from django.db.models import Q

        from accesscontrol.actions import FACE_TEMPLATE_CHANGE
        from accesscontrol.models import RuleChange
        from accesscontrol.rulechanges import EVERYTHING

        with self._lock:
            if self._gallery is None:
                return self._rebuild()
            now = time.monotonic()
            for row_id, noticed in list(self._gaps.items()):
                if now - noticed > self.gap_seconds:
                    del self._gaps[row_id]
            # Every kind's rows, read once: the ids not among them below the newest may still commit (gaps).
            changes = RuleChange.objects.filter(Q(id__gt=self._last_change_id) | Q(id__in=list(self._gaps)))
            rows = list(changes.order_by("id").values_list("id", "model", "object_id")[: self.max_changes + 1])
            if len(rows) > self.max_changes or any(model == EVERYTHING for _, model, _ in rows):
                return self._rebuild()
            seen = {row_id for row_id, _, _ in rows}
            for row_id in seen:
                self._gaps.pop(row_id, None)
            newest = max(seen, default=0)
            if newest > self._last_change_id:
                for row_id in range(max(self._last_change_id, newest - 2 * self.max_changes) + 1, newest + 1):
                    if row_id not in seen:
                        self._gaps[row_id] = now
                self._last_change_id = newest
            rows = [row for row in rows if row[1] == FACE_TEMPLATE_CHANGE]
            cardholders = {object_id for _, _, object_id in rows}
            if cardholders:
                self._reload(cardholders)
            return self._gallery

    def _rebuild(self) -> Gallery:
        from accesscontrol import faces
        from accesscontrol.models import RuleChange

        # The high-water mark first: changes committed during the build are applied again later, harmlessly.
        recent = list(RuleChange.objects.order_by("-id").values_list("id", flat=True)[:2000])
        last = recent[0] if recent else 0
        owners, matrix = faces.load_templates(self.model_name)
        gallery = Gallery.of(owners, matrix) if len(owners) else Gallery(self.dimension)
        self._gallery, self._last_change_id = gallery, last
        self._gaps.clear()
        # Ids missing among the recent ones may belong to transactions still open: watch them too.
        now, seen = time.monotonic(), set(recent)
        for row_id in range(recent[-1] + 1 if recent else 1, last + 1):
            if row_id not in seen:
                self._gaps[row_id] = now
        self.full_builds += 1
        return gallery

    def _reload(self, cardholders: set[int]) -> None:
        from accesscontrol import faces

        owners, matrix = faces.load_templates(self.model_name, cardholders)
        for cardholder_id in cardholders:
            self._gallery.replace(cardholder_id, matrix[owners == cardholder_id])


_stores: dict[str, GalleryStore] = {}
_stores_lock = threading.Lock()


def get_store(model_name: str) -> GalleryStore:
    """The process's gallery of ``model_name`` (call ``refresh()`` before matching, as with the rules snapshot)."""
    with _stores_lock:
        store = _stores.get(model_name)
        if store is None:
            store = _stores[model_name] = GalleryStore(model_name)
        return store


def face_threshold(access_point_threshold: float | None = None) -> float:
    """The score a face must reach at an access point: its own ``face_threshold``, or the site's."""
    from django.conf import settings

    return settings.SPACE_FACE_THRESHOLD if access_point_threshold is None else access_point_threshold
