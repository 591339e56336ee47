"""Chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm": what each pools over, when each wins.

Code of ``notebooks/04_layer_instance_group_norm.ipynb``.
"""
