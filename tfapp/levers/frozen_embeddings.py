"""levers.frozen_embeddings.enabled: the word-piece embedding matrix (half of a small BERT's
weights) keeps its pretrained values; position embeddings and the encoder still learn."""
from __future__ import annotations

import dataclasses

from tfapp.core.lever import Lever, register_lever


@dataclasses.dataclass
class FrozenEmbeddingsConfig:
    enabled: bool = False  # true: the word-piece embeddings keep their pretrained values


@register_lever
class FrozenEmbeddings(Lever):
    name = "frozen_embeddings"
    Config = FrozenEmbeddingsConfig
    legacy_train_keys = {"freeze_token_embeddings": "enabled"}

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def on_model(self, model, loaded) -> None:
        loaded.backbone.get_layer("token_embedding").trainable = False
