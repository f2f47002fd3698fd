"""Makes ``_tiny_runner.py`` importable as ``_tiny_runner`` by this folder's
tests, loaded once: pytest runs with ``--import-mode=importlib``, which puts
no test folder on ``sys.path``."""
import importlib.util
import sys
from pathlib import Path

if '_tiny_runner' not in sys.modules:
    _path = Path(__file__).with_name('_tiny_runner.py')
    _spec = importlib.util.spec_from_file_location('_tiny_runner', _path)
    sys.modules['_tiny_runner'] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules['_tiny_runner'])
