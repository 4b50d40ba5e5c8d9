"""Text into fixed-length blocks for pretraining, and what the eval blocks say about the data.

Documents are tokenized, joined by the document separator and cut into blocks lazily
(`datasets` map), for a streamed corpus as for a local one; nothing pads. A stream has no
test split to draw, so `hold_out_head` keeps its first documents for evaluation.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter

import datasets
import numpy as np
import torch

from chatstack.engine import DOC_SEP  # the tokenizer's document separator (chatstack.tokenizer imports chatstack.data)
from chatstack.errors import DataError


def pack(ds, tokenizer, block_size: int, text_column: str):
    """Tokenize documents, join them with the document separator, cut fixed blocks (no padding).

    Lazy for an IterableDataset (a streamed corpus is tokenized as the Trainer reads it);
    each batch of 1,000 documents drops its last partial block (< 0.1 % of the tokens of
    web documents)."""
    sep = tokenizer.convert_tokens_to_ids(DOC_SEP)

    def to_blocks(batch):
        ids = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        flat = [t for doc in ids for t in (*doc, sep)]
        n = len(flat) // block_size * block_size
        # one int32 array of blocks: Arrow takes it whole, where lists of Python ints go one by one
        return {"input_ids": np.array(flat[:n], dtype=np.int32).reshape(-1, block_size)}

    cols = ds.column_names
    if cols is None:  # a stream whose features are unknown until read
        cols = list(next(iter(ds.take(1))).keys())
    return ds.map(to_blocks, batched=True, batch_size=1000, remove_columns=cols)


def hold_out_head(stream, n: int, text_column: str, where: str):
    """(train stream, eval Dataset): the first n documents of the stream are the eval set.

    They are filtered out of training by content hash, which stays right however the stream
    is later sharded across processes and workers (a skip(n) would not: datasets splits n
    across shards)."""
    rows = list(stream.take(n))
    if not rows:
        raise DataError(f"{where}: the stream is empty")
    held = {_doc_key(r[text_column]) for r in rows}
    train = stream.filter(lambda b: [_doc_key(t) not in held for t in b[text_column]], batched=True, batch_size=1000)
    return train, datasets.Dataset.from_list([{text_column: r[text_column]} for r in rows])


def _doc_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def collate_blocks(features):
    """Packed blocks are all block_size long: stack them; labels are the inputs (the model shifts).
    No attention mask, so SDPA takes its causal fast path."""
    ids = torch.from_numpy(np.asarray([f["input_ids"] for f in features], dtype=np.int64))  # lists or a stream's arrays
    return {"input_ids": ids, "labels": ids.clone()}


def offset_collator(n_positions: int):
    """collate_blocks, plus `position_ids` that start each block at a random position of the
    model's context: a model pretrained on blocks shorter than its context otherwise keeps the
    untrained initial embeddings at every later position, where its chats' answers come."""
    def collate(features):
        batch = collate_blocks(features)
        rows, length = batch["input_ids"].shape
        start = torch.randint(0, n_positions - length + 1, (rows, 1))
        return {**batch, "position_ids": start + torch.arange(length)}
    return collate


def unigram_entropy(blocks) -> float:
    """Entropy (nats) of the eval tokens' unigram distribution: the loss of a model that
    knows token frequencies and nothing else. A model that learned anything beats it."""
    counts = Counter(t for b in blocks for t in b)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


def bytes_per_token(blocks, tokenizer) -> float:
    """UTF-8 bytes of the eval text per eval token (special tokens count no bytes), for bits per byte."""
    n_tokens = sum(len(b) for b in blocks)
    n_bytes = sum(len(tokenizer.decode(b, skip_special_tokens=True).encode()) for b in blocks)
    return n_bytes / max(1, n_tokens)
