# ImageNet family at 336 px (ViT-L/14@336).
_base_ = ['./imagenet.py']
image_size = 336
train_pipeline = [
    dict(type='LoadImageDraft', min_size=image_size),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path')),
]
test_pipeline = [
    dict(type='LoadImageDraft', min_size=image_size),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    imagenet_holdout=dict(dataset=dict(pipeline=test_pipeline)))
test_dataloader = dict(
    imagenet=dict(dataset=dict(pipeline=test_pipeline)),
    imagenet_v2=dict(dataset=dict(pipeline=test_pipeline)),
    imagenet_r=dict(dataset=dict(pipeline=test_pipeline)),
    imagenet_a=dict(dataset=dict(pipeline=test_pipeline)),
    imagenet_sketch=dict(dataset=dict(pipeline=test_pipeline)),
    objectnet=dict(dataset=dict(pipeline=test_pipeline)))
