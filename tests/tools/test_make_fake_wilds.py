"""tools/dataset_tools/make_fake_wilds.py writes folders our datasets open."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

TOOL = pathlib.Path(__file__).parents[2] / 'tools' / 'dataset_tools' / \
    'make_fake_wilds.py'


def _tool():
    spec = importlib.util.spec_from_file_location('make_fake_wilds', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fake_wilds_open_with_drm_mm_datasets(tmp_path):
    from drm_mm.datasets.wilds_fmow import WILDSFMoW
    from drm_mm.datasets.wilds_iwildcam import WILDSIWildCam
    tool = _tool()
    assert tool.main([str(tmp_path), '--iwildcam-classes', '5',
                      '--fmow-per-split', '6']) == 0
    iwildcam = WILDSIWildCam(data_root=str(tmp_path), split='test')
    assert iwildcam.metainfo['classes'][0] == 'empty'
    assert len(iwildcam.metainfo['classes']) == 5
    fmow = WILDSFMoW(data_root=str(tmp_path), split='val')
    assert len(fmow) == 6
    # A second run refuses to overwrite unless asked.
    assert tool.main([str(tmp_path), '--datasets', 'fmow']) == 1
    assert tool.main([str(tmp_path), '--datasets', 'fmow',
                      '--overwrite']) == 0


def test_bad_arguments_exit_with_usage(tmp_path):
    with pytest.raises(SystemExit):
        _tool().main([str(tmp_path), '--iwildcam-classes', '500'])
