# ImageNet-1k and its shifted variants at 224 px. ImageNet val is the
# reported ID test set, so model selection uses a fixed held-out part of
# train (10 images per class, seed 0, drawn once into
# data/imagenet/train_holdout_10pc_seed0.txt; training uses the rest).
# OOD: V2 (matched frequency), R and A (200-class subsets, logits restricted
# before the softmax), Sketch and ObjectNet (113 classes: each head's logits
# folded before its softmax, 1-px border crop).
# Layout under data/: imagenet/{train,val}/<wnid>/*.JPEG,
# imagenetv2-matched-frequency-format-val/<idx>/, sketch/<wnid>/,
# imagenet-r/<wnid>/, imagenet-a/<wnid>/, objectnet-1.0/{images,mappings}/.
# The one data root of every set: set `data_root` in a child config or pass
# `--cfg-options data_root=/my/data`; each set reads it as '${data_root}'
# when the runner is built (drm_mm.datasets.config_refs).
data_root = 'data'
image_size = 224

train_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path')),
]
test_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path')),
]

# batch_size is per GPU: 8 GPUs x 64 = 512, the paper's global batch.
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='drm_mm.ImageNetFolder',
                 data_root='${data_root}/imagenet', split='train_fit',
                 pipeline=train_pipeline))


def _set(dataset_type, **kwargs):  # noqa: E306
    root = '${data_root}/imagenet' \
        if dataset_type == 'drm_mm.ImageNetFolder' else '${data_root}'
    return dict(dataset=dict(type=dataset_type, data_root=root,
                             pipeline=test_pipeline, **kwargs),
                sampler=dict(type='DefaultSampler', shuffle=False))


# model selection (save_best='imagenet_holdout/accuracy'): never a test set
val_dataloader = dict(batch_size=128, num_workers=8,
                      imagenet_holdout=_set('drm_mm.ImageNetFolder',
                                            split='train_holdout'))
val_evaluator = dict(type='drm_mm.ImageNetAccuracy')
val_cfg = dict(type='drm_mm.MultiDatasetValLoop')

# `dataset`: defaults of every set; MMPretrain's get_model reads its type
# and its inferencers its pipeline (a child config that changes
# test_pipeline sets it here too).
test_dataloader = dict(
    batch_size=128, num_workers=8,
    dataset=dict(type='drm_mm.ImageNetFolder', pipeline=test_pipeline),
    imagenet=_set('drm_mm.ImageNetFolder', split='val'),
    imagenet_v2=_set('drm_mm.ImageNetV2'),
    imagenet_r=_set('drm_mm.ImageNetR'),
    imagenet_a=_set('drm_mm.ImageNetA'),
    imagenet_sketch=_set('drm_mm.ImageNetSketch'),
    objectnet=_set('drm_mm.ObjectNet'))
test_evaluator = dict(type='drm_mm.ImageNetAccuracy')
test_cfg = dict(type='drm_mm.MultiDatasetTestLoop')
