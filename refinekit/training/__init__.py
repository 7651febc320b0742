"""Training: the SimGAN algorithm on tensors, and the run loop (schedule, checkpoints, display) around it."""
