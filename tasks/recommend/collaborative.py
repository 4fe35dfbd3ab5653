"""Collaborative-filtering baselines of an interaction log, computed in the same run and
ranked by the same protocol as the model (tasks.recommend.evaluation): what a recommender
team compares a text model with.

  item_knn  item-item cosine similarity of the training interactions (users as features);
            a user's score for an item is the sum of its similarities to the history items
  bpr_mf    matrix factorisation trained with the BPR loss (Rendle et al. 2009) on the
            training positives, each against an item the user never interacted with, as an
            id-only two-tower Keras model (user and item embeddings, dot product): the same
            framework as the task's model, no extra dependency, and the shape a hybrid model
            extends with its text tower

Both see only training-period interactions; items with none (cold items) get no signal,
which the cold-item rows of the report show."""
from __future__ import annotations

import numpy as np


def impression_user(impression_id: str) -> str:
    """The user of an interaction-log impression (ids are `<user>#<position>`)."""
    return impression_id.rsplit("#", 1)[0]


def interaction_matrix(train_positives: dict, n_items: int) -> tuple[np.ndarray, dict]:
    """([users, items] 0/1 training interactions, {user: row})."""
    users = {u: k for k, u in enumerate(sorted(train_positives))}
    matrix = np.zeros((len(users), n_items), np.float32)
    for user, items in train_positives.items():
        matrix[users[user], items] = 1.0
    return matrix, users


def item_knn_scores(imps, train_positives: dict, n_items: int) -> np.ndarray:
    """[impressions, items]: the summed cosine similarity of each item to the history's."""
    matrix, _ = interaction_matrix(train_positives, n_items)
    norms = np.sqrt(matrix.sum(axis=0))
    similarity = (matrix.T @ matrix) / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(similarity, 0.0)
    return np.stack([similarity[h].sum(axis=0) if h else np.zeros(n_items, np.float32)
                     for h in imps.history]).astype(np.float64)


def train_bpr(train_positives: dict, n_items: int, seed: int, dim: int = 32,
              epochs: int = 30, batch: int = 1024, l2: float = 1e-4):
    """(user vectors, item vectors, {user: row}) of a BPR matrix factorisation."""
    import keras

    matrix, users = interaction_matrix(train_positives, n_items)
    pairs = np.argwhere(matrix > 0)  # (user row, item) per training positive
    rng = np.random.default_rng(seed)
    init = keras.initializers.RandomNormal(stddev=0.1, seed=seed)
    user_in = keras.Input((), dtype="int32")
    pos_in, neg_in = keras.Input((), dtype="int32"), keras.Input((), dtype="int32")
    user_emb = keras.layers.Embedding(len(users), dim, embeddings_initializer=init,
                                      dtype="float32", name="user")
    item_emb = keras.layers.Embedding(n_items, dim, embeddings_initializer=init,
                                      dtype="float32", name="item")
    u, p, n = user_emb(user_in), item_emb(pos_in), item_emb(neg_in)
    margin = keras.ops.sum(u * (p - n), axis=-1)
    model = keras.Model([user_in, pos_in, neg_in], margin)

    def bpr_loss(_, margin):
        return keras.ops.mean(keras.ops.softplus(-margin))

    model.compile(optimizer=keras.optimizers.Adam(0.01, weight_decay=l2), loss=bpr_loss)
    for _ in range(epochs):
        order = rng.permutation(len(pairs))
        user, pos = pairs[order, 0], pairs[order, 1]
        neg = rng.integers(0, n_items, len(pairs))
        clash = matrix[user, neg] > 0  # a sampled "negative" the user did interact with
        while clash.any():
            neg[clash] = rng.integers(0, n_items, int(clash.sum()))
            clash = matrix[user, neg] > 0
        model.fit([user, pos, neg], np.zeros(len(pairs), np.float32), batch_size=batch,
                  epochs=1, verbose=0, shuffle=False)
    return (keras.ops.convert_to_numpy(user_emb.embeddings),
            keras.ops.convert_to_numpy(item_emb.embeddings), users)


def mf_scores(imps, factors) -> np.ndarray:
    """[impressions, items] from `train_bpr`'s factors; a user without training
    interactions scores every item 0."""
    user_vectors, item_vectors, users = factors
    zero = np.zeros(item_vectors.shape[1], np.float32)
    rows = np.stack([user_vectors[users[u]] if u in users else zero
                     for u in map(impression_user, imps.ids)])
    return (rows @ item_vectors.T).astype(np.float64)
