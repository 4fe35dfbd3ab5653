"""Continued masked-language-model pretraining of the shared backbone on domain text."""
