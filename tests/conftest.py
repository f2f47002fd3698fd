"""Session fixtures of the library tests: tiny WILDS / ImageNet folders in
their real layouts, written once per test session by the layout writers of
``tools/dataset_tools`` (the checkout's root ``conftest.py`` sets up paths,
threads and the network guard)."""
from __future__ import annotations

import pathlib

import pytest

FAKE_IMAGENET_WNIDS = ('n01440764', 'n01443537', 'n01484850', 'n01491361')


@pytest.fixture(scope='session')
def fake_iwildcam_root(tmp_path_factory: pytest.TempPathFactory
                       ) -> pathlib.Path:
    """Root of a tiny iWildCam v2.0 (6 classes, 8 locations, all 5 splits).

    Open it with ``wilds.get_dataset('iwildcam', root_dir=root,
    download=False)``. Images are 64x48 random JPEGs; the categories are the
    first six rows of the real WILDS table, as the dataset class expects.
    """
    from drm_mm.datasets.classnames import iwildcam_categories
    from tools.dataset_tools.wilds_layout import (tiny_iwildcam_samples,
                                                  write_iwildcam)
    root = tmp_path_factory.mktemp('iwildcam')
    categories = [(c.y, c.category_id, c.name)
                  for c in iwildcam_categories()[:6]]
    write_iwildcam(root, tiny_iwildcam_samples(seed=0, n_classes=6,
                                               size=(64, 48)),
                   categories=categories)
    return root


@pytest.fixture(scope='session')
def fake_fmow_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Root of a tiny FMoW v1.1: all 5 splits, 5 regions + 'Other' in each.

    Open it with ``wilds.get_dataset('fmow', root_dir=root, download=False)``.
    Images are 32x32 random PNGs; a few sequestered ('seq') rows are mixed in.
    """
    from tools.dataset_tools.wilds_layout import tiny_fmow_samples, write_fmow
    root = tmp_path_factory.mktemp('fmow')
    write_fmow(root, tiny_fmow_samples(seed=0, size=(32, 32)))
    return root


@pytest.fixture(scope='session')
def fake_imagenet_root(tmp_path_factory: pytest.TempPathFactory
                       ) -> pathlib.Path:
    """Root of a tiny ImageNet: ``train/`` and ``val/`` for 4 wnids, 2 each."""
    from tools.dataset_tools.imagenet_layout import write_imagenet
    root = tmp_path_factory.mktemp('imagenet')
    write_imagenet(root, FAKE_IMAGENET_WNIDS, per_class=2)
    return root
