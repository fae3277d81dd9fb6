import pytest

from finetune.backends import get_backend, make_config
from finetune._backend import BackendError


def test_unsloth_fails_at_once_without_a_gpu_and_names_hf(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    backend = get_backend("unsloth")
    config = make_config(backend, {"load_in_4bit": True}, output_dir=str(tmp_path / "ck"))
    with pytest.raises(BackendError, match=r"needs an NVIDIA GPU.*use the hf backend \(--backend hf\)"):
        backend.fit("any-base", tmp_path / "missing.jsonl", config)
    assert not (tmp_path / "ck").exists()  # nothing was started or written


def test_unsloth_config_extends_hf():
    pytest.importorskip("transformers")
    from finetune.backends.hf import HFConfig
    from finetune.backends.unsloth import UnslothConfig

    config = UnslothConfig(lora_r=4, max_seq_length=512)
    assert isinstance(config, HFConfig) and config.lora_r == 4 and config.use_gradient_checkpointing == "unsloth"


@pytest.mark.gpu
def test_unsloth_never_imported_by_the_core():
    import subprocess
    import sys

    code = "import harness, agents, scenarios, finetune, finetune.backends.unsloth, sys; print('unsloth' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
