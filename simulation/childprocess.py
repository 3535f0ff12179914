"""The entry point of a spawned child process that needs Django: set it up, then call the target.

A simulator run with ``multiprocessing`` (start method ``spawn``, so that it
shares neither the GIL nor a forked database connection with Space) is named as
``"module:function"`` and its arguments travel pickled in ``packed``: unpickling
the function or an argument of a class of its module would import that module
before Django is set up, and modules that reach the models refuse that.
``extra`` are arguments multiprocessing itself must carry (a pipe's end).
"""

import importlib
import os
import pickle


def pack(*args) -> bytes:
    return pickle.dumps(args)


def run(target: str, packed: bytes, *extra):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "space.settings")
    django.setup()
    module, name = target.split(":")
    function = getattr(importlib.import_module(module), name)
    return function(*pickle.loads(packed), *extra)  # noqa: S301 (our own parent's arguments)
