"""The reference side of bench.run: Hugging Face transformers + PyTorch on the same
checkpoint, batches and optimizer settings as ours."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.measure import latency, rates


def hf_model_dir(loaded, backbone: str, num_labels: int) -> Path:
    """The checkpoint directory transformers loads: the packaged one, or the tiny model
    written out in Hugging Face format (same weights) for the quick suite."""
    from tfapp.core.backbone import packaged_backbone_dir

    if backbone == "default":
        return packaged_backbone_dir()
    import transformers

    bb = loaded.backbone
    cfg = transformers.BertConfig(
        vocab_size=bb.vocabulary_size, hidden_size=bb.hidden_dim, num_hidden_layers=bb.num_layers,
        num_attention_heads=bb.num_heads, intermediate_size=bb.intermediate_dim,
        max_position_embeddings=bb.max_sequence_length, num_labels=num_labels)
    out = Path(tempfile.mkdtemp(prefix="bench_hf_"))
    transformers.BertForSequenceClassification(cfg).save_pretrained(str(out))
    vocab = loaded.tokenizer.get_vocabulary()
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return out


def train_theirs(model_dir: Path, num_labels: int, cfg, suite, data: list) -> dict:
    """A plain transformers + torch loop: same batches, AdamW, clipping, CE loss."""
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=num_labels)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.learning_rate,
                            weight_decay=cfg.optimizer.weight_decay)

    def step(batch):
        x, y, *_ = batch
        y = y["sentiment"] if isinstance(y, dict) else y
        out = model(input_ids=torch.from_numpy(x["token_ids"].numpy()).long(),
                    attention_mask=torch.from_numpy(x["padding_mask"].numpy()).long(),
                    labels=torch.from_numpy(np.argmax(y.numpy(), axis=-1)).long())
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.clip_norm)
        opt.step()

    for b in data[: suite.warmup_steps]:
        step(b)
    start = time.perf_counter()
    for b in data[suite.warmup_steps:]:
        step(b)
    return rates(data[suite.warmup_steps:], time.perf_counter() - start)


def infer_theirs(model_dir: Path, texts: list[str], suite) -> dict:
    import torch
    import transformers

    pipe = transformers.pipeline("text-classification", model=str(model_dir),
                                 tokenizer=str(model_dir), device="cpu")
    for t in texts[:5]:
        pipe(t)
    pipe(texts[:32], batch_size=32)
    lat = []
    with torch.inference_mode():
        for i in range(suite.latency_requests):
            start = time.perf_counter()
            pipe(texts[i % len(texts)])
            lat.append(time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(suite.throughput_batches):
            pipe(texts[(i * 32) % len(texts):][:32] or texts[:32], batch_size=32)
    return latency(lat) | {"batch32_examples_per_s": round(
        32 * suite.throughput_batches / (time.perf_counter() - start), 1)}
