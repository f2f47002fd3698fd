# Baseline for configs/drm/vitb16_iwildcam.py: same data, schedule and model;
# only the method differs.
# LP-FT: continues from the LP checkpoint with the towers unfrozen
# (load_from = the LP run's best checkpoint).
#   python tools/train.py configs/baselines/lpft_vitb16_iwildcam.py \
#       --cfg-options load_from=work_dirs/lp_vitb16_iwildcam/best_....pth
_base_ = ['../drm/vitb16_iwildcam.py']

model = dict(head=dict(beta=1.0, linear=True),
             loss=dict(erm='ce', wrm_weight=0.0), descriptions=None)
custom_hooks = [dict(type='drm_mm.DivergenceGuardHook', action='stop')]
