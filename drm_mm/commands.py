"""Console commands of an installed drm_mm (``setup.py`` entry points).

A wheel carries the scripts of ``demo/`` and ``tools/`` in
``drm_mm/.mim`` (as MMPretrain does, for ``mim train/test``); these
commands run them for users without a checkout:

* ``drm-mm-image-demo IMAGE CONFIG --checkpoint CKPT``: ``demo/image_demo.py``;
* ``drm-mm-make-fake-wilds ROOT``: ``tools/dataset_tools/make_fake_wilds.py``
  (a tiny fake iWildCam / FMoW in the WILDS layout, for smoke runs).
"""
import os.path as osp
import runpy
import sys

__all__ = ['image_demo', 'make_fake_wilds', 'script_path']

_PACKAGE = osp.dirname(osp.abspath(__file__))


def script_path(relative: str) -> str:
    """Real path of a shipped script: ``drm_mm/.mim/<relative>`` (installed;
    in an editable install a link into the checkout) or
    ``<checkout>/<relative>``."""
    for root in (osp.join(_PACKAGE, '.mim'), osp.dirname(_PACKAGE)):
        path = osp.join(root, relative)
        if osp.isfile(path):
            # an editable install links .mim/<folder> to the checkout
            return osp.realpath(path)
    raise FileNotFoundError(
        f'drm_mm: {relative} is neither in {osp.join(_PACKAGE, ".mim")} '
        f'(installed package) nor in the checkout; reinstall drm_mm '
        f'(pip install drm_mm or pip install -e .).')


def _run(relative: str) -> None:
    path = script_path(relative)
    # the script's folder first, as `python script.py` would put it (its
    # sibling modules, e.g. wilds_layout.py, import from there)
    sys.path.insert(0, osp.dirname(path))
    sys.argv = [path] + sys.argv[1:]
    runpy.run_path(path, run_name='__main__')


def image_demo() -> None:
    """``drm-mm-image-demo``: ``demo/image_demo.py``."""
    _run(osp.join('demo', 'image_demo.py'))


def make_fake_wilds() -> None:
    """``drm-mm-make-fake-wilds``: the fake-data writer
    ``tools/dataset_tools/make_fake_wilds.py``."""
    _run(osp.join('tools', 'dataset_tools', 'make_fake_wilds.py'))
