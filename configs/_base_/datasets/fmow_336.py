# WILDS FMoW at 336 px (ViT-L/14@336).
_base_ = ['./fmow.py']
image_size = 336
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'region',
                                       'year')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'region',
                                       'year')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(id_val=dict(dataset=dict(pipeline=test_pipeline)))
test_dataloader = dict(
    id_val=dict(dataset=dict(pipeline=test_pipeline)),
    id_test=dict(dataset=dict(pipeline=test_pipeline)),
    val=dict(dataset=dict(pipeline=test_pipeline)),
    test=dict(dataset=dict(pipeline=test_pipeline)))
