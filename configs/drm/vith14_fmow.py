# DRM on CLIP ViT-H/14 (open_clip's LAION-2B weights), WILDS FMoW, sharded with
# FSDP (not a paper setting: the paper stops at ViT-L/14@336). Same model,
# prompts, soft labels and evaluation as the ViT-L configs; FSDP splits
# weights, gradients and AdamW state over the ranks (fsdp_runtime.py).
#   bash tools/dist_train.sh configs/drm/vith14_fmow.py 8
#   bash tools/dist_test.sh configs/drm/vith14_fmow.py CHECKPOINT 8
#   python tools/wise_ft.py configs/drm/vith14_fmow.py --finetuned CHECKPOINT
# The checkpoints hold consolidated weights (tools/test.py reads them).
_base_ = [
    '../_base_/models/drm_clip.py', '../_base_/datasets/fmow.py',
    '../_base_/schedules/clip_finetune_20e.py', '../_base_/fsdp_runtime.py'
]

model = dict(
    clip=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k',
              grad_checkpointing=True),
    classnames='fmow',
    templates='fmow',
    descriptions='fmow.json')
# bf16 autocast; activation checkpointing inside the FSDP blocks.
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')

default_hooks = dict(
    checkpoint=dict(save_best='id_val/acc', rule='greater'))
