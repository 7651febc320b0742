"""Weight files: atomic safetensors checkpoints and exported refiners, converted ones, and shipped pretrained ones."""
