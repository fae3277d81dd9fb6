"""A tiny local model shared by the text fine-tuning tests (built once per session, never downloaded)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    import torch

    from finetune.init_model import init_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return init_model(tmp_path_factory.mktemp("tiny") / "model", layers=2, hidden=64, seed=0, format_steps=60)
    finally:
        torch.set_num_threads(threads)
