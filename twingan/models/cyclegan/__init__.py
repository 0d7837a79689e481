"""CycleGAN (Zhu et al. 2017), the baseline: two generators and two PatchGAN critics, as the public reference."""
