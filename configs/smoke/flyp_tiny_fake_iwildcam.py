# FLYP baseline of drm_tiny_fake_iwildcam.py: the same model, data and
# schedule with lambda = 0 (contrastive ERM only) and df-only inference
# (beta = 1), so neither descriptions nor soft labels are needed.
_base_ = ['./drm_tiny_fake_iwildcam.py']

model = dict(
    descriptions=None,
    head=dict(beta=1.0),
    loss=dict(erm='contrastive', wrm_weight=0.0))
custom_hooks = []
work_dir = 'work_dirs/flyp_tiny_fake_iwildcam'
