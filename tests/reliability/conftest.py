"""Makes ``_helpers.py`` importable as ``_reliability_helpers`` by this
folder's tests, loaded once: pytest runs with ``--import-mode=importlib``,
which puts no test folder on ``sys.path``."""
import importlib.util
import sys
from pathlib import Path

NAME = '_reliability_helpers'

if NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        NAME, Path(__file__).with_name('_helpers.py'))
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[NAME] = _module
    _spec.loader.exec_module(_module)
