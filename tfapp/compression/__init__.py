"""Compression of finished runs: knowledge distillation into a smaller student, and int8
post-training quantisation."""
