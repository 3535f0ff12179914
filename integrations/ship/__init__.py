"""SHIP: the XML integrator interface in SALTO's shape (docs/ship-in-space.md).

``xml`` is the codec and the STP framing; ``operations`` the requests Space answers;
``views`` the HTTPS endpoint; ``service`` the TCP server; ``host`` the client that asks
an outside SHIP host for a user's permissions.
"""
