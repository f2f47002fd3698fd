# Fine-tuning recipe of the toy world, in the spirit of the paper's WILDS
# recipe (AdamW, small learning rate, warm-up then cosine, short schedule):
# lr 1e-4 is a tenth of the toy CLIP's pretraining peak (the paper: 1e-5 on
# CLIP's 5e-4), 3 epochs of batch 128 = 96 steps, 10 warm-up steps. Fixed
# before any DRM run; the same for every method.
optim_wrapper = dict(
    type='drm_mm.DivergenceGuardOptimWrapper',  # stops on a NaN / inf loss
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.1,
                   betas=(0.9, 0.999), eps=1e-8),
    clip_grad=None)

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=10),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=10, eta_min=0.0),
]

# exact mid-epoch resume (see drm_mm.ResumableEpochBasedTrainLoop)
train_cfg = dict(type='drm_mm.ResumableEpochBasedTrainLoop',
                 max_epochs=3, val_interval=3)
auto_scale_lr = dict(base_batch_size=128, enable=False)
