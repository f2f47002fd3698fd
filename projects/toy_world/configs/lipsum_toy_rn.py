# Lipsum-FT in the toy world (Nam, Heo, Lee, ICLR 2024).
# Same data, schedule and model as ce_toy_rn.py (CE fine-tuning of the
# text-initialised df head, lambda = 0, beta = 1); only the regulariser
# towards the frozen pre-trained toy CLIP differs (configs/baselines/).
_base_ = ['./ce_toy_rn.py']

model = dict(regularizer=dict(type='drm_mm.LipsumLoss', loss_weight=1.0,
                               num_texts=80, text_length=8))
