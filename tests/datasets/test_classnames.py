"""Class names for prompts: iWildCam, FMoW, ImageNet and its subsets."""
from __future__ import annotations

import pytest

from drm_mm.datasets.classnames import (class_subset_indices, get_classnames,
                                        imagenet_a_wnids, imagenet_r_wnids,
                                        imagenet_wnids, iwildcam_categories,
                                        iwildcam_common_name)


def test_iwildcam_182_lower_cased_common_names_in_y_order():
    names = get_classnames('iwildcam')
    rows = iwildcam_categories()
    assert len(names) == 182 == len(set(names))
    assert names[0] == 'empty'
    assert names == [r.common_name for r in rows]
    assert all(n == n.lower() and n.strip() == n for n in names)
    assert [r.y for r in rows] == list(range(182))


def test_iwildcam_latin_name_lookup_is_whitespace_and_case_tolerant():
    row = iwildcam_categories()[4]
    assert iwildcam_common_name(row.name.upper()) == row
    assert iwildcam_common_name('  ' + row.name.replace(' ', '  ')) == row
    with pytest.raises(KeyError):
        iwildcam_common_name('felis imaginaria')


def test_fmow_62_wilds_names():
    from wilds.datasets.fmow_dataset import categories
    names = get_classnames('fmow')
    assert names == list(categories) and len(names) == 62
    assert 'airport_hangar' in names


def test_imagenet_names_are_open_clip_names():
    import open_clip
    assert get_classnames('imagenet') == list(open_clip.IMAGENET_CLASSNAMES)
    assert len(imagenet_wnids()) == 1000
    assert list(imagenet_wnids()) == sorted(imagenet_wnids())


@pytest.mark.parametrize('name, wnids', [('imagenet_a', imagenet_a_wnids),
                                         ('imagenet_r', imagenet_r_wnids)])
def test_subsets_follow_subset_order(name, wnids):
    indices = class_subset_indices(name)
    assert len(indices) == 200 and indices == sorted(indices)
    assert [imagenet_wnids()[i] for i in indices] == list(wnids())
    all_names = get_classnames('imagenet')
    assert get_classnames(name) == [all_names[i] for i in indices]


def test_unknown_set_lists_valid_ones():
    with pytest.raises(ValueError, match='iwildcam.*imagenet_r'):
        get_classnames('cifar10')


def test_class_ids_are_the_wnids_of_the_imagenet_sets():
    from drm_mm.datasets.classnames import get_class_ids
    assert get_class_ids('imagenet') == list(imagenet_wnids())
    assert get_class_ids('imagenet_a') == list(imagenet_a_wnids())
    assert get_class_ids('imagenet_r') == list(imagenet_r_wnids())
    with pytest.raises(ValueError, match="'fmow' has no class ids"):
        get_class_ids('fmow')


def test_iwildcam_names_differing_in_white_space_stay_apart():
    # WILDS lists y=153 'mazama temama' and y=181 'mazama  temama'.
    rows = iwildcam_categories()
    assert rows[153].name == 'mazama temama'
    assert rows[181].name == 'mazama  temama'
    assert iwildcam_common_name('mazama temama').y == 153
    assert iwildcam_common_name('mazama  temama').y == 181
    assert iwildcam_common_name(' mazama  temama ').y == 181
    assert iwildcam_common_name('Mazama temama').y == 153
    with pytest.raises(KeyError, match='only up to white space'):
        iwildcam_common_name('Mazama   Temama')


def test_imagenet_subset_class_keys_keep_the_wnid_of_duplicated_names():
    from drm_mm.datasets.classnames import get_class_keys
    keys = get_class_keys('imagenet')
    assert keys[657] == 'missile [n03773504]'
    assert keys[744] == 'missile [n04008634]'
    for subset in ('imagenet_r', 'imagenet_a'):
        sub = get_class_keys(subset)
        assert sub == [keys[i] for i in class_subset_indices(subset)]
        assert len(sub) == 200
    assert get_class_keys('fmow') == get_classnames('fmow')
