"""Training: the loss of Eq. 1, the two-phase GAN step, the generic loop and the recipes."""
