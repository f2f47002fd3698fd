# FLYP / DRM fine-tuning recipe for ImageNet (docs/method.md): AdamW, lr 1e-5,
# weight decay 0.1, 500 warm-up iterations then cosine decay, 10 epochs,
# global batch 512.
_base_ = ['./clip_finetune_20e.py']
optim_wrapper = dict(optimizer=dict(lr=1e-5, weight_decay=0.1))
# exact mid-epoch resume (see drm_mm.ResumableEpochBasedTrainLoop)
train_cfg = dict(type='drm_mm.ResumableEpochBasedTrainLoop',
                 max_epochs=10, val_interval=1)
auto_scale_lr = dict(base_batch_size=512, enable=False)
