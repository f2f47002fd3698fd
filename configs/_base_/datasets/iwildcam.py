# WILDS iWildCam v2.0 at 224 px (docs/method.md): train / id_val / id_test /
# val (OOD) / test (OOD). Model selection on id_val macro-F1; one
# `tools/test.py` call reports every split.
# Data: <data_root>/iwildcam_v2.0/ (wilds layout). Get it with
#   python -c "import wilds; wilds.get_dataset('iwildcam', root_dir='data/wilds', download=True)"
# or point data_root at an existing WILDS download.
dataset_type = 'drm_mm.WILDSIWildCam'
# The one data root of every split: set `data_root` in a child config or
# pass `--cfg-options data_root=/my/wilds`; each split reads it as
# '${data_root}' when the runner is built (drm_mm.datasets.config_refs).
data_root = 'data/wilds'
image_size = 224

# 1920x1080 camera-trap JPEGs: decode at a reduced scale (PIL draft) that
# still covers the crop; exact for other formats.
train_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    # sample_idx: exact soft-label lookup; location: per-camera metrics
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
test_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]

# batch_size is per GPU: 8 GPUs x 32 = 256, the paper's global batch.
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root='${data_root}', split='train',
                 pipeline=train_pipeline))


def _split(split):  # noqa: E306 (configs are Python)
    return dict(dataset=dict(type=dataset_type, data_root='${data_root}',
                             split=split, pipeline=test_pipeline),
                sampler=dict(type='DefaultSampler', shuffle=False))


val_dataloader = dict(batch_size=128, num_workers=8, id_val=_split('id_val'))
val_evaluator = dict(type='drm_mm.IWildCamMetric')
val_cfg = dict(type='drm_mm.MultiDatasetValLoop')

# `dataset`: defaults of every set; MMPretrain's get_model reads its type
# and its inferencers its pipeline (a child config that changes
# test_pipeline sets it here too).
test_dataloader = dict(
    batch_size=128, num_workers=8,
    dataset=dict(type=dataset_type, pipeline=test_pipeline),
    id_val=_split('id_val'), id_test=_split('id_test'),
    val=_split('val'), test=_split('test'))
test_evaluator = dict(type='drm_mm.IWildCamMetric')
test_cfg = dict(type='drm_mm.MultiDatasetTestLoop')
