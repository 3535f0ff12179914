"""The entry point of a spawned child process that needs Django: set it up, then call the target.

A simulator run with ``multiprocessing`` (start method ``spawn``, so that it
shares neither the GIL nor a forked database connection with Space) is named as
``"module:function"``: unpickling the function itself would import its module
before Django is set up, and modules that reach the models refuse that.
"""

import importlib
import os


def run(target: str, *args):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "space.settings")
    django.setup()
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(*args)
