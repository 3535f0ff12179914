"""Who may open an access point now: the cardholders a face is searched among (devices/face/service.py).

This first version asks the engine about every cardholder (correct, slow at a large site); the vectorised
index replaces it.
"""

import numpy as np

from accesscontrol import engine


class AllowedCache:
    def get(self, snapshot: engine.Snapshot, access_point_id: int, at) -> np.ndarray:
        point = snapshot.access_points.get(access_point_id)
        if point is None:
            return np.empty(0, dtype=np.int64)
        ids = [
            holder.id
            for holder in snapshot.cardholders.values()
            if engine._evaluate_holder(snapshot, holder, "", point, at, None, frozenset(), False, False, None).granted
        ]
        return np.asarray(sorted(ids), dtype=np.int64)
