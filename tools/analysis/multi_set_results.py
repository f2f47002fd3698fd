"""Shared by ``eval_metric.py`` and ``confusion_matrix.py``: the sets of a
predictions pickle written by ``tools/test.py --out`` (MMPretrain's or
drm_mm's), as ``{set name: [predictions]}``."""
from typing import Dict, List, Optional

import mmengine


def load_sets(path: str, only: Optional[str] = None) -> Dict[str, List]:
    """``{set: [predictions]}`` of a pickle holding that dict (multi-set
    loops) or a plain list (one set, named ``''``).

    Args:
        path (str): the ``.pkl`` file.
        only (str, optional): keep this set only. Defaults to None.
    """
    data = mmengine.load(path)
    if isinstance(data, list):
        sets = {'': data}
    elif isinstance(data, dict) and all(
            isinstance(v, list) for v in data.values()):
        sets = dict(data)
    else:
        raise SystemExit(
            f'{path}: expected a list of predictions or a dict '
            f'{{set: [predictions]}} (tools/test.py --out x.pkl), got '
            f'{type(data).__name__}.')
    if only is not None:
        if only not in sets:
            raise SystemExit(f'{path}: no set {only!r}; the file has '
                             f'{sorted(sets)} (pass one of them to --set).')
        sets = {only: sets[only]}
    return sets


def prefixed(name: str, metrics: dict) -> dict:
    """``<set>/<metric>`` names (plain names for the unnamed set)."""
    return {f'{name}/{k}' if name else k: v for k, v in metrics.items()}
