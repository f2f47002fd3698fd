# WILDS FMoW v1.1 at 224 px (docs/method.md), split scheme time_after_2016:
# train / id_val / id_test before 2013, val 2013-2015, test 2016 onwards.
# OOD metric: worst-region accuracy (5 regions, "Other" excluded).
# Data: <data_root>/fmow_v1.1/ (wilds layout). Get it with
#   python -c "import wilds; wilds.get_dataset('fmow', root_dir='data/wilds', download=True)"
dataset_type = 'drm_mm.WILDSFMoW'
# The one data root of every split: set `data_root` in a child config or
# pass `--cfg-options data_root=/my/wilds`; each split reads it as
# '${data_root}' when the runner is built (drm_mm.datasets.config_refs).
data_root = 'data/wilds'
image_size = 224

# 224x224 PNGs: decoded exactly.
train_pipeline = [
    dict(type='drm_mm.LoadImageDraft'),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'region',
                                       'year')),
]
test_pipeline = [
    dict(type='drm_mm.LoadImageDraft'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'region',
                                       'year')),
]

# batch_size is per GPU: 8 GPUs x 32 = 256, the paper's global batch.
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root='${data_root}', split='train',
                 pipeline=train_pipeline))


def _split(split):  # noqa: E306
    return dict(dataset=dict(type=dataset_type, data_root='${data_root}',
                             split=split, pipeline=test_pipeline),
                sampler=dict(type='DefaultSampler', shuffle=False))


val_dataloader = dict(batch_size=128, num_workers=8, id_val=_split('id_val'))
val_evaluator = dict(type='drm_mm.FMoWMetric')
val_cfg = dict(type='drm_mm.MultiDatasetValLoop')

# `dataset`: defaults of every set; MMPretrain's get_model reads its type
# and its inferencers its pipeline (a child config that changes
# test_pipeline sets it here too).
test_dataloader = dict(
    batch_size=128, num_workers=8,
    dataset=dict(type=dataset_type, pipeline=test_pipeline),
    id_val=_split('id_val'), id_test=_split('id_test'),
    val=_split('val'), test=_split('test'))
test_evaluator = dict(type='drm_mm.FMoWMetric')
test_cfg = dict(type='drm_mm.MultiDatasetTestLoop')
