# DRM on your own image folder (docs/your_own_data.md): CLIP ViT-B/16
# (OpenAI weights), the paper's DRM objective, dual inference (beta 0.5).
# Your config (every split follows data_root and classes):
#   _base_ = ['/path/to/drm_mm/configs/drm/vitb16_image_folder.py']
#   data_root = 'data/my_pets'
#   classes = ['cat', 'dog', 'red fox']
#   model = dict(classnames=classes,
#                descriptions='data/my_pets/descriptions.json')
# then tools/train.py / tools/test.py (ours or MMPretrain's) as for any
# config. The warm-up is one epoch (it scales with the dataset); model
# selection follows the first validation metric ('auto').
_base_ = [
    '../_base_/models/drm_clip.py', '../_base_/datasets/image_folder.py',
    '../_base_/default_runtime.py'
]

model = dict(
    clip=dict(model_name='ViT-B-16', pretrained='openai',
              grad_checkpointing=False),
    # set in your config: the class names in label order (what the
    # prompts say), your descriptions JSON keyed by class name
    classnames=None,
    templates=['a photo of a {c}.'],
    descriptions=None)

# AdamW as in the paper's recipe; warm-up and cosine in epochs, converted
# to iterations, so that they fit any dataset size.
optim_wrapper = dict(
    type='drm_mm.DivergenceGuardOptimWrapper',
    on_nonfinite='stop',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.1,
                   betas=(0.9, 0.999), eps=1e-8))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, eta_min=0.0,
         convert_to_iter_based=True),
]
train_cfg = dict(type='drm_mm.ResumableEpochBasedTrainLoop', max_epochs=10,
                 val_interval=1)
auto_scale_lr = dict(base_batch_size=32, enable=False)

default_hooks = dict(checkpoint=dict(save_best='auto', rule='greater'))
