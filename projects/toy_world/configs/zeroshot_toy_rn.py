# Zero-shot toy CLIP (no training), df head alone (beta = 1; set beta=0 for
# the cd head, 0.5 for the mixture). Same data and model as
# drm_toy_rn.py.
#   PYTHONPATH=. python tools/test.py \
#       projects/toy_world/configs/zeroshot_toy_rn.py none
_base_ = ['./drm_toy_rn.py']

model = dict(head=dict(beta=1.0), loss=dict(erm='contrastive', wrm_weight=0.0))
custom_hooks = []
