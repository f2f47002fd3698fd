# FLYP / DRM fine-tuning recipe for WILDS (docs/method.md): AdamW, lr 1e-5,
# weight decay 0.2, 500 warm-up iterations then cosine decay, 20 epochs,
# global batch 256 (see auto_scale_lr). The wrapper stops training before
# the update when the loss is NaN / inf (on_nonfinite='skip' drops the
# step instead); the AMP configs use drm_mm.DivergenceGuardAmpOptimWrapper.
optim_wrapper = dict(
    type='drm_mm.DivergenceGuardOptimWrapper',
    on_nonfinite='stop',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.2,
                   betas=(0.9, 0.999), eps=1e-8),
    clip_grad=None)

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=500, eta_min=0.0),
]

# exact mid-epoch resume (see drm_mm.ResumableEpochBasedTrainLoop)
train_cfg = dict(type='drm_mm.ResumableEpochBasedTrainLoop',
                 max_epochs=20, val_interval=1)

# The paper's global batch. `--auto-scale-lr` rescales lr by
# (GPUs x samples_per_gpu) / base_batch_size.
auto_scale_lr = dict(base_batch_size=256, enable=False)
