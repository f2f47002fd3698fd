# WILDS iWildCam at 336 px (ViT-L/14@336): the 224 px config with larger
# crops.
_base_ = ['./iwildcam.py']
image_size = 336
train_pipeline = [
    dict(type='LoadImageDraft', min_size=image_size),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
test_pipeline = [
    dict(type='LoadImageDraft', min_size=image_size),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(id_val=dict(dataset=dict(pipeline=test_pipeline)))
test_dataloader = dict(
    id_val=dict(dataset=dict(pipeline=test_pipeline)),
    id_test=dict(dataset=dict(pipeline=test_pipeline)),
    val=dict(dataset=dict(pipeline=test_pipeline)),
    test=dict(dataset=dict(pipeline=test_pipeline)))
