# FT baseline of drm_tiny_fake_iwildcam.py: cross-entropy on the df head
# (text-fed zero-shot head, both towers train), lambda = 0, beta = 1.
_base_ = ['./drm_tiny_fake_iwildcam.py']

model = dict(
    descriptions=None,
    head=dict(beta=1.0),
    loss=dict(erm='ce', wrm_weight=0.0, label_smoothing=0.0))
custom_hooks = []
work_dir = 'work_dirs/ce_tiny_fake_iwildcam'
