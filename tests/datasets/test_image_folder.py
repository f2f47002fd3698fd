"""drm_mm.ImageFolder: the user's folders, labelled in the order of the
class list the model's prompts use."""
import numpy as np
import pytest
from PIL import Image

from drm_mm.datasets import ImageFolder


def _write(root, folders, per_class=2):
    for f in folders:
        (root / f).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(
                root / f / f'{i}.png')


def _labels(ds):
    return {ds.get_data_info(i)['img_path'].split('/')[-2]:
            ds.get_data_info(i)['gt_label'] for i in range(len(ds))}


def test_labels_follow_the_class_list_not_the_folder_order(tmp_path):
    # sorted folders: cat, red_fox, zebra; the class list says otherwise
    _write(tmp_path / 'train', ['zebra', 'cat', 'red_fox'])
    ds = ImageFolder(data_root=str(tmp_path), data_prefix='train',
                     classes=['zebra', 'red fox', 'cat'])
    assert ds.metainfo['classes'] == ('zebra', 'red fox', 'cat')
    assert _labels(ds) == {'zebra': 0, 'red_fox': 1, 'cat': 2}
    assert len(ds) == 6


def test_a_split_may_hold_a_subset_and_classes_come_from_a_file(tmp_path):
    _write(tmp_path / 'night', ['dog'])
    (tmp_path / 'classes.txt').write_text('cat\ndog\n\n')
    ds = ImageFolder(data_root=str(tmp_path), data_prefix='night',
                     classes=str(tmp_path / 'classes.txt'))
    assert ds.metainfo['classes'] == ('cat', 'dog')
    assert _labels(ds) == {'dog': 1}


def test_no_class_list_uses_the_sorted_folders(tmp_path):
    _write(tmp_path / 'train', ['dog', 'cat'])
    ds = ImageFolder(data_root=str(tmp_path), data_prefix='train')
    assert ds.metainfo['classes'] == ('cat', 'dog')
    assert _labels(ds) == {'cat': 0, 'dog': 1}


def test_unknown_folder_is_one_line(tmp_path):
    _write(tmp_path / 'train', ['cat', 'wolf'])
    with pytest.raises(ValueError, match=r"ImageFolder: folders \['wolf'\] "
                       r".* name no class of `classes`"):
        ImageFolder(data_root=str(tmp_path), data_prefix='train',
                    classes=['cat', 'dog'])


def test_missing_folder_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r'Set the top-level `data_root` of the config'):
        ImageFolder(data_root=str(tmp_path / 'nope'), data_prefix='train',
                    classes=['cat'])


def test_annotation_file_layout(tmp_path):
    _write(tmp_path / 'imgs', ['a'])
    (tmp_path / 'train.txt').write_text('a/1.png 1\na/0.png 0\n')
    ds = ImageFolder(data_root=str(tmp_path), data_prefix='imgs',
                     ann_file='train.txt', classes=['cat', 'dog'])
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
