# CPU smoke run (not a paper experiment): a tiny open_clip ViT image tower
# (registered by drm_mm, 32 px, random weights) + MMPretrain's linear head,
# trained for 2 epochs on a small fake iWildCam in the real WILDS layout.
# Make the data first:
#   python tools/dataset_tools/make_fake_wilds.py data/fake_wilds --datasets iwildcam
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/fake_wilds'
num_classes = 6
image_size = 32
# CLIP's pixel statistics (0-255 scale).
clip_mean = [122.770938, 116.7460125, 104.09373615]
clip_std = [68.5005327, 66.6321579, 70.32316305]

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=num_classes,
        mean=clip_mean, std=clip_std, to_rgb=True),
    backbone=dict(type='drm_mm.OpenCLIPVision', model_name='drm-tiny-vit',
                  pretrained=None),
    head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=32,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
              topk=(1, )),
)

train_pipeline = [
    dict(type='drm_mm.LoadImageDraft'),
    dict(type='RandomResizedCrop', scale=image_size, crop_ratio_range=(0.9,
                                                                       1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
test_pipeline = [
    dict(type='drm_mm.LoadImageDraft'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]

train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='drm_mm.WILDSIWildCam', data_root='${data_root}', split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='drm_mm.WILDSIWildCam', data_root='${data_root}', split='id_val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='drm_mm.WILDSIWildCam', data_root='${data_root}', split='test',
                 pipeline=test_pipeline))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3,
                                    weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=2),
]
# exact mid-epoch resume (see drm_mm.ResumableEpochBasedTrainLoop)
train_cfg = dict(type='drm_mm.ResumableEpochBasedTrainLoop',
                 max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
work_dir = 'work_dirs/tiny_clip_linear_fake_iwildcam'
