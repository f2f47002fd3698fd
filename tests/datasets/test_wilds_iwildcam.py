"""WILDSIWildCam: splits, labels and metrics identical to wilds (fake data)."""
from __future__ import annotations

import datetime as dt
import pathlib
import shutil

import numpy as np
import pytest
import torch
import wilds
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample
from sklearn.metrics import f1_score

from drm_mm.datasets.classnames import iwildcam_categories
from drm_mm.datasets.wilds_iwildcam import WILDSIWildCam
from tools.dataset_tools.wilds_layout import random_image, write_iwildcam
from drm_mm.evaluation.metrics.iwildcam_metric import IWildCamMetric

N_CLASSES = 8
SPLITS = ('train', 'id_val', 'id_test', 'val', 'test')
# Labels per split: the OOD splits miss some classes, so "macro over the
# labels present" differs from "macro over all classes".
SPLIT_LABELS = {'train': list(range(N_CLASSES)) * 2,
                'id_val': list(range(N_CLASSES)),
                'id_test': list(range(N_CLASSES)),
                'val': [1, 1, 3, 3, 3, 6],
                'test': [0, 0, 0, 2, 2, 5, 5, 5, 5]}
SPLIT_LOCATIONS = {'train': (0, 1, 2), 'id_val': (0, 1, 2),
                   'id_test': (0, 1, 2), 'val': (3, 4), 'test': (5, 6)}


def _samples(seed: int = 0):
    rng = np.random.default_rng(seed)
    start = dt.datetime(2013, 1, 1)
    k = 0
    for split in SPLITS:
        locs = SPLIT_LOCATIONS[split]
        for j, y in enumerate(SPLIT_LABELS[split]):
            yield dict(image=random_image(rng, (40, 30)), split=split, y=y,
                       location=locs[j % len(locs)],
                       datetime=start + dt.timedelta(hours=k))
            k += 1


def real_category_rows(n: int):
    return [(r.y, r.category_id, r.name) for r in iwildcam_categories()[:n]]


@pytest.fixture(scope='module')
def iwildcam_root(tmp_path_factory) -> pathlib.Path:
    """A fake iWildCam v2.0 whose categories.csv holds real category rows."""
    root = tmp_path_factory.mktemp('iwildcam_real_names')
    write_iwildcam(root, _samples(), categories=real_category_rows(N_CLASSES))
    return root


def _wilds(root):
    return wilds.get_dataset('iwildcam', root_dir=str(root), download=False)


@pytest.mark.parametrize('split', SPLITS)
def test_split_sizes_labels_and_metadata_match_wilds(iwildcam_root, split):
    ours = WILDSIWildCam(data_root=str(iwildcam_root), split=split)
    subset = _wilds(iwildcam_root).get_subset(split)
    assert len(ours) == len(subset) == len(SPLIT_LABELS[split])
    infos = [ours.get_data_info(i) for i in range(len(ours))]
    assert [d['gt_label'] for d in infos] == subset.y_array.tolist()
    locations = subset.metadata_array[:, 0].tolist()
    assert [d['location'] for d in infos] == locations
    assert [d['sample_idx'] for d in infos] == list(range(len(ours)))
    names = [subset.dataset._input_array[i] for i in subset.indices]
    assert [pathlib.Path(d['img_path']).name for d in infos] == list(names)
    assert all(pathlib.Path(d['img_path']).is_file() for d in infos)
    assert ours.test_mode == (split != 'train')


def test_classes_are_lower_cased_common_names(iwildcam_root):
    ds = WILDSIWildCam(data_root=str(iwildcam_root), split='id_val')
    rows = iwildcam_categories()[:N_CLASSES]
    assert ds.metainfo['classes'] == tuple(r.common_name for r in rows)
    assert ds.metainfo['classes'][0] == 'empty'
    assert all(c == c.lower() for c in ds.metainfo['classes'])
    assert ds.metainfo['category_names'] == tuple(r.name for r in rows)


def _evaluate(ds, y_pred) -> dict:
    evaluator = Evaluator(IWildCamMetric())
    evaluator.dataset_meta = ds.metainfo
    samples = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        sample = DataSample().set_gt_label(info['gt_label'])
        sample.set_pred_label(int(y_pred[i]))
        sample.set_metainfo(dict(sample_idx=i, location=info['location']))
        samples.append(sample)
    evaluator.process(samples[:4])
    evaluator.process(samples[4:])
    return evaluator.evaluate(len(ds))


@pytest.mark.parametrize('split', SPLITS)
def test_metrics_equal_wilds_eval_for_random_predictions(iwildcam_root,
                                                         split):
    ds = WILDSIWildCam(data_root=str(iwildcam_root), split=split)
    full = _wilds(iwildcam_root)
    subset = full.get_subset(split)
    for seed in range(3):
        y_pred = torch.from_numpy(np.random.default_rng(seed).integers(
            0, N_CLASSES, len(ds)))
        ours = _evaluate(ds, y_pred)
        theirs, _ = full.eval(y_pred, subset.y_array,
                              subset.metadata_array)
        assert ours['acc'] == pytest.approx(theirs['acc_avg'], abs=1e-9)
        assert ours['recall_macro'] == pytest.approx(
            theirs['recall-macro_all'], abs=1e-9)
        assert ours['macro_f1'] == pytest.approx(theirs['F1-macro_all'],
                                                 abs=1e-9)


def test_macro_f1_averages_over_labels_present_only(iwildcam_root):
    ds = WILDSIWildCam(data_root=str(iwildcam_root), split='test')
    y_true = np.array([ds.get_data_info(i)['gt_label']
                       for i in range(len(ds))])
    y_pred = y_true.copy()
    y_pred[0] = 7  # one wrong prediction, into a class absent from y_true
    ours = _evaluate(ds, y_pred)['macro_f1']
    present = f1_score(y_true, y_pred, average='macro',
                       labels=np.unique(y_true))
    all_classes = f1_score(y_true, y_pred, average='macro',
                           labels=np.arange(N_CLASSES), zero_division=0)
    # wilds (and so we) round sklearn's value through a float32 tensor.
    assert ours == pytest.approx(present, abs=1e-7)
    assert abs(ours - all_classes) > 0.1


def test_pipeline_decodes_and_packs_location(iwildcam_root):
    ds = WILDSIWildCam(
        data_root=str(iwildcam_root), split='val',
        pipeline=[dict(type='LoadImageDraft'),
                  dict(type='PackInputs',
                       meta_keys=('sample_idx', 'location'))])
    item = ds[2]
    assert item['inputs'].shape == (3, 30, 40)
    assert item['data_samples'].sample_idx == 2
    assert item['data_samples'].location == ds.get_data_info(2)['location']
    gt = ds.get_data_info(2)['gt_label']
    assert int(item['data_samples'].gt_label) == gt


# ------------------------------------------------------------ bad input


def test_fake_category_names_fail_naming_the_category(tmp_path):
    write_iwildcam(tmp_path, _samples())  # default names: class_<y>
    with pytest.raises(ValueError, match=r"'class_0'.*iwildcam_categories"):
        WILDSIWildCam(data_root=str(tmp_path), split='train')


def test_conftest_fixture_opens(fake_iwildcam_root):
    ds = WILDSIWildCam(data_root=str(fake_iwildcam_root), split='id_val')
    assert ds.metainfo['classes'][0] == 'empty' and len(ds) > 0


def test_unknown_category_among_real_ones_is_named(tmp_path):
    rows = real_category_rows(N_CLASSES)
    rows[3] = (3, 999, 'felis imaginaria')
    write_iwildcam(tmp_path, _samples(), categories=rows)
    with pytest.raises(ValueError, match='felis imaginaria'):
        WILDSIWildCam(data_root=str(tmp_path), split='train')


def test_missing_data_root_names_path_and_download(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as err:
        WILDSIWildCam(data_root=str(missing), split='train')
    message = str(err.value)
    assert str(missing) in message
    assert 'download=True' in message and 'wilds.stanford.edu' in message
    assert not missing.exists()  # nothing created


def test_missing_dataset_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='iwildcam_v2.0'):
        WILDSIWildCam(data_root=str(tmp_path), split='train')


def test_folder_without_release_file(tmp_path, iwildcam_root):
    shutil.copytree(iwildcam_root / 'iwildcam_v2.0',
                    tmp_path / 'iwildcam_v2.0')
    (tmp_path / 'iwildcam_v2.0' / 'RELEASE_v2.0.txt').unlink()
    with pytest.raises(FileNotFoundError, match='RELEASE_v2.0.txt'):
        WILDSIWildCam(data_root=str(tmp_path), split='train')


def test_unknown_split_lists_valid_ones(iwildcam_root):
    with pytest.raises(ValueError) as err:
        WILDSIWildCam(data_root=str(iwildcam_root), split='validation')
    assert 'validation' in str(err.value)
    for split in SPLITS:
        assert split in str(err.value)


def test_corrupt_image_error_names_file(tmp_path, iwildcam_root):
    shutil.copytree(iwildcam_root / 'iwildcam_v2.0',
                    tmp_path / 'iwildcam_v2.0')
    ds = WILDSIWildCam(data_root=str(tmp_path), split='val',
                       pipeline=[dict(type='LoadImageDraft'),
                                 dict(type='PackInputs')])
    path = pathlib.Path(ds.get_data_info(1)['img_path'])
    path.write_bytes(path.read_bytes()[:200])  # truncate
    with pytest.raises(OSError, match=path.name):
        ds[1]


def test_skip_corrupt_counts_and_logs_each_file(tmp_path, iwildcam_root,
                                                monkeypatch):
    shutil.copytree(iwildcam_root / 'iwildcam_v2.0',
                    tmp_path / 'iwildcam_v2.0')
    ds = WILDSIWildCam(data_root=str(tmp_path), split='train',
                       skip_corrupt=True,
                       pipeline=[dict(type='LoadImageDraft', min_size=8),
                                 dict(type='PackInputs')])
    broken = [0, 5]
    for i in broken:
        path = pathlib.Path(ds.get_data_info(i)['img_path'])
        path.write_bytes(path.read_bytes()[:150])
    logged = []
    import drm_mm.datasets.skip_corrupt as skip_module
    monkeypatch.setattr(skip_module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    np.random.seed(0)
    items = [ds[i] for i in range(len(ds))]
    assert ds.corrupt_indices == set(broken)
    # The replacement samples carry their own sample_idx, never a skipped one.
    returned = [int(it['data_samples'].sample_idx) for it in items]
    assert not set(returned) & set(broken)
    assert [r for i, r in enumerate(returned) if i not in broken] == [
        i for i in range(len(ds)) if i not in broken]
    skipped = [m for m in logged if 'skipped corrupt image' in m]
    assert len(skipped) >= 2
    for i in broken:
        name = pathlib.Path(ds.get_data_info(i)['img_path']).name
        assert any(name in m for m in skipped)
    assert '2 corrupt file(s) skipped' in skipped[-1]


def test_skip_corrupt_refused_on_evaluation_splits(iwildcam_root):
    with pytest.raises(ValueError, match='skip_corrupt'):
        WILDSIWildCam(data_root=str(iwildcam_root), split='test',
                      skip_corrupt=True,
                      pipeline=[dict(type='LoadImageDraft')])


def test_skip_corrupt_needs_the_detecting_loader(iwildcam_root):
    with pytest.raises(ValueError, match='LoadImageDraft'):
        WILDSIWildCam(data_root=str(iwildcam_root), split='train',
                      skip_corrupt=True,
                      pipeline=[dict(type='LoadImageFromFile')])


def test_registered_in_drm_mm_scope(iwildcam_root):
    from drm_mm.registry import DATASETS
    ds = DATASETS.build(dict(type='WILDSIWildCam',
                             data_root=str(iwildcam_root), split='id_test'))
    assert isinstance(ds, WILDSIWildCam)


def test_class_names_from_categories_file(tmp_path):
    """Other datasets in the iWildCam layout keep their own class names."""
    from drm_mm.datasets.wilds_iwildcam import WILDSIWildCam
    from tools.dataset_tools.wilds_layout import (tiny_iwildcam_samples,
                                                  write_iwildcam)
    write_iwildcam(tmp_path, tiny_iwildcam_samples(seed=1, n_classes=3),
                   categories=[(0, 10, 'circle'), (1, 11, 'square'),
                               (2, 12, 'star')])
    ds = WILDSIWildCam(data_root=str(tmp_path), split='train',
                       class_names='categories')
    assert ds.metainfo['classes'] == ('circle', 'square', 'star')
    with pytest.raises(ValueError, match="'circle'"):
        WILDSIWildCam(data_root=str(tmp_path), split='train')
    with pytest.raises(ValueError, match="class_names='latin'"):
        WILDSIWildCam(data_root=str(tmp_path), class_names='latin')


def test_all_182_real_categories_give_182_distinct_class_names(tmp_path):
    # WILDS y=153 'mazama temama' and y=181 'mazama  temama' differ only in
    # white space; each keeps its own common name.
    rng = np.random.default_rng(0)
    samples = [dict(image=random_image(rng, (8, 8)), split=split, y=y,
                    location=0)
               for y in range(182) for split in ('train', 'id_val')]
    write_iwildcam(tmp_path, samples, categories=real_category_rows(182))
    ds = WILDSIWildCam(data_root=str(tmp_path), split='id_val')
    classes = ds.metainfo['classes']
    assert len(classes) == 182 == len(set(classes))
    assert classes[153] == 'central american red brocket'
    assert classes[181] == 'central american brocket deer'
    assert list(classes) == [r.common_name for r in iwildcam_categories()]
