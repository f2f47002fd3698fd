# FSDP strategy of the sharded configs: parameters, gradients and AdamW
# state split over the ranks. Goes with runner_type =
# 'drm_mm.DRMFlexibleRunner' (fsdp_runtime.py sets both; the ViT-H/14
# configs add it to the ViT-L/14 config they inherit).
strategy = dict(
    type='drm_mm.DRMFSDPStrategy',
    # one FSDP unit per transformer block of both towers
    model_wrapper=dict(
        auto_wrap_policy='drm_mm.clip_block_wrap_policy',
        sharding_strategy='FULL_SHARD',
        use_orig_params=True,
        # mixed_precision=dict(param_dtype='bfloat16',
        #                      reduce_dtype='float32'),  # halves traffic
    ),
    # consolidated weights in every checkpoint (rank 0, on CPU): read by
    # tools/test.py, tools/wise_ft.py and DRMRunner like a DDP checkpoint.
    # The only value accepted: per-rank 'local' shards cannot be resumed.
    state_dict_cfg='full')
