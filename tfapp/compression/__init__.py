"""Compression of finished runs: knowledge distillation into a smaller student,
structured pruning of attention heads and feed-forward neurons, and int8 post-training
quantisation."""
