# Your own images (docs/your_own_data.md), in MMPretrain's CustomDataset
# layouts under one data root:
#   <data_root>/train/<class>/*.jpg    training set
#   <data_root>/val/<class>/*.jpg      ID validation set (model selection)
# (<class>: the class name, spaces may be underscores; or an annotation file
# per split: ann_file='train.txt' with lines "<path> <label index>").
# A child sets `data_root` and `classes` once; every split reads them as
# '${data_root}' / '${classes}' when the runner is built.
dataset_type = 'drm_mm.ImageFolder'
data_root = None  # e.g. 'data/my_pets'
classes = None  # class names in label order, or a text file (one a line)
image_size = 224

train_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    # sample_idx: the exact soft-label lookup
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path')),
]
test_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path')),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root='${data_root}',
                 data_prefix='train', classes='${classes}',
                 pipeline=train_pipeline))


def _split(prefix):  # noqa: E306 (configs are Python)
    return dict(dataset=dict(type=dataset_type, data_root='${data_root}',
                             data_prefix=prefix, classes='${classes}',
                             pipeline=test_pipeline),
                sampler=dict(type='DefaultSampler', shuffle=False))


# Named sets (drm_mm.MultiDatasetValLoop): metrics come back as
# 'val/accuracy/top1', 'val/single-label/f1-score'; save_best='auto' in
# the DRM config selects on the first (val accuracy).
val_dataloader = dict(batch_size=64, num_workers=4, persistent_workers=True,
                      val=_split('val'))
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='SingleLabelMetric', average='macro', items=('f1-score', )),
]
val_cfg = dict(type='drm_mm.MultiDatasetValLoop')

# OOD test sets are more named sets, e.g. in a child config:
#   test_dataloader = dict(night=dict(dataset=dict(
#       type='drm_mm.ImageFolder', data_root='${data_root}',
#       data_prefix='night', classes='${classes}', pipeline=test_pipeline)))
# `dataset`: the defaults of every set, and what MMPretrain's get_model and
# inferencers read.
test_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True,
    dataset=dict(type=dataset_type, pipeline=test_pipeline),
    val=_split('val'))
test_evaluator = val_evaluator
test_cfg = dict(type='drm_mm.MultiDatasetTestLoop')
