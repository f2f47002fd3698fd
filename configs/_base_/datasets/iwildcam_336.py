# WILDS iWildCam at 336 px (ViT-L/14@336): ./iwildcam.py with every size set to
# 336. MMEngine replaces lists as a whole, so the two pipelines are
# restated with the new size; every split of the base gets them.
_base_ = ['./iwildcam.py']
image_size = 336
train_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
test_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=image_size),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = {split: dict(dataset=dict(pipeline=test_pipeline))
                  for split in ('id_val',)}
test_dataloader = dict(
    dataset=dict(pipeline=test_pipeline),
    **{split: dict(dataset=dict(pipeline=test_pipeline))
       for split in ('id_val', 'id_test', 'val', 'test')})
