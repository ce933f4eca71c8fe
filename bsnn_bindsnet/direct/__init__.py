"""Direct-training route (XNOR-BSNN): binary-weight SNNs trained with surrogate gradients,
batch-norm folded into thresholds, exported to BindsNET."""
