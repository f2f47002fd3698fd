# DRM on CLIP ViT-H/14 (open_clip's LAION-2B weights), WILDS iWildCam, sharded with
# FSDP (not a paper setting: the paper stops at ViT-L/14@336). The ViT-L/14
# config (vitl14_iwildcam.py: model, prompts, soft labels, data, schedule,
# bf16 autocast, activation checkpointing, evaluation) with another CLIP
# and the FSDP runtime: FSDP splits weights, gradients and AdamW state over
# the ranks (_base_/fsdp_strategy.py, _base_/fsdp_runtime.py).
#   bash tools/dist_train.sh configs/drm/vith14_iwildcam.py 8
#   bash tools/dist_test.sh configs/drm/vith14_iwildcam.py CHECKPOINT 8
#   python tools/wise_ft.py configs/drm/vith14_iwildcam.py --finetuned CHECKPOINT
# The checkpoints hold consolidated weights (tools/test.py reads them).
_base_ = ['./vitl14_iwildcam.py', '../_base_/fsdp_strategy.py']

# DRMFlexibleRunner in place of the ViT-L config's DRMRunner
runner_type = 'drm_mm.DRMFlexibleRunner'

model = dict(
    clip=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k'))
