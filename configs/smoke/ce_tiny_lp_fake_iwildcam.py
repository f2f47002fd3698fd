# LP baseline of drm_tiny_fake_iwildcam.py: a linear df head initialised
# from the zero-shot df prototypes, trained with cross-entropy; every CLIP
# tower frozen.
_base_ = ['./drm_tiny_fake_iwildcam.py']

model = dict(
    clip=dict(frozen=('image', 'text', 'logit_scale')),
    descriptions=None,
    head=dict(beta=1.0, linear=True),
    loss=dict(erm='ce', wrm_weight=0.0))
custom_hooks = []
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.0))
work_dir = 'work_dirs/ce_tiny_lp_fake_iwildcam'
