# CPU smoke run of DRM (not a paper experiment): a tiny open_clip CLIP
# (registered by drm_mm, 32 px, random weights) fine-tuned with the dual
# risk (FLYP contrastive ERM + lambda * WRM on core-based soft labels) on a
# small fake iWildCam in the real WILDS layout. The model is the full
# 182-class iWildCam model (class names, "a photo of {c}." and the shipped
# concept descriptions); the fake data uses the first few classes.
# Soft labels come from the cache: SoftLabelCacheHook computes them once
# before training into work_dirs/.soft_label_cache and reuses them.
#   python tools/train.py configs/smoke/drm_tiny_fake_iwildcam.py
#   PYTHON=.venv/bin/python bash tools/dist_train.sh \
#       configs/smoke/drm_tiny_fake_iwildcam.py 2
#   python tools/test.py configs/smoke/drm_tiny_fake_iwildcam.py \
#       work_dirs/drm_tiny_fake_iwildcam/epoch_2.pth
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/fake_wilds'
image_size = 32

model = dict(
    type='drm_mm.DRMClassifier',
    # which towers train: clip.frozen=('image' | 'text' | 'logit_scale', ...)
    clip=dict(type='drm_mm.OpenCLIP', model_name='drm-tiny-vit', pretrained=None,
              frozen=()),
    classnames='iwildcam',
    templates='iwildcam',
    descriptions='iwildcam.json',
    # dual inference: beta * softmax(z_df) + (1 - beta) * softmax(z_cd)
    head=dict(type='drm_mm.CLIPTextHead', beta=0.5),
    loss=dict(type='drm_mm.DualRiskLoss', erm='contrastive', wrm_weight=1.0),
    soft_labels=dict(source='cache', normalization='minmax', tau=0.1),
    # CLIP's pixel statistics; inputs decoded as BGR -> RGB
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305], to_rgb=True),
)

# p_c once, with the test pipeline (default: the ID validation set's).
custom_hooks = [dict(type='drm_mm.SoftLabelCacheHook', batch_size=32)]

train_pipeline = [
    dict(type='drm_mm.LoadImageDraft'),
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), backend='pillow',
         interpolation='bicubic'),
    # sample_idx: the exact soft-label lookup
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
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='drm_mm.WILDSIWildCam', data_root='${data_root}', split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='drm_mm.WILDSIWildCam', data_root='${data_root}', split='id_val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='drm_mm.WILDSIWildCam', data_root='${data_root}', split='test',
                 pipeline=test_pipeline))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4,
                                    weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=2),
]
# exact mid-epoch resume (see drm_mm.ResumableEpochBasedTrainLoop)
train_cfg = dict(type='drm_mm.ResumableEpochBasedTrainLoop',
                 max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=2),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=8, enable=False)
work_dir = 'work_dirs/drm_tiny_fake_iwildcam'
