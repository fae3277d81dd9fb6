import json

import pytest

from finetune.backends import get_backend, make_config
from finetune._backend import BackendError
from tests._finetune_api_server import FineTuneAPI

KEY = "sk-test-key-never-written"
ROWS = [{"messages": [{"role": "system", "content": "3 buttons"}, {"role": "user", "content": "Round 1 of 5."},
                      {"role": "assistant", "content": "ANSWER: green"}]}] * 3


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _fit(api, dataset, out, **settings):
    backend = get_backend("api")
    config = make_config(backend, {"api_base": api.api_base, "api_key_env": "REGRET_TEST_FT_KEY",
                                   "poll_initial_s": 0.01, "poll_max_s": 0.02, **settings}, output_dir=str(out))
    return backend.fit("openai/gpt-4o-mini-2024-07-18", dataset, config)


def _no_key_anywhere(directory):
    for path in directory.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_job_lifecycle_succeeds(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_TEST_FT_KEY", KEY)
    with FineTuneAPI(("queued", "running", "running", "succeeded"), key=KEY) as api:
        checkpoint = _fit(api, dataset, tmp_path / "ck", epochs=2)
    job = api.jobs["ftjob-1"]
    assert job["request"]["model"] == "gpt-4o-mini-2024-07-18" and job["request"]["hyperparameters"] == {"n_epochs": 2}
    assert job["polls"] == 4
    uploaded = api.files[job["request"]["training_file"]]
    assert b'"ANSWER: green"' in uploaded and uploaded.count(b'"messages"') == 3
    assert checkpoint.agent == "openai/ft:gpt-4o-mini-2024-07-18:org:regret:ftjob-1"
    assert checkpoint.params == {"api_base": api.api_base, "api_key_env": "REGRET_TEST_FT_KEY"}
    assert checkpoint.metrics["examples"] == 3 and checkpoint.metrics["trained_tokens"] == 1234
    record = json.loads((tmp_path / "ck" / "job.json").read_text())
    assert record["status"] == "succeeded" and record["fine_tuned_model"].startswith("ft:")
    _no_key_anywhere(tmp_path)


def test_failed_job_raises_with_its_error(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_TEST_FT_KEY", KEY)
    with FineTuneAPI(("queued", "failed"), error="Training file has 3 examples; at least 10 are required",
                     key=KEY) as api:
        with pytest.raises(BackendError, match="ftjob-1 failed: Training file has 3 examples"):
            _fit(api, dataset, tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "job.json").read_text())["status"] == "failed"
    _no_key_anywhere(tmp_path)


def test_cancelled_job_and_missing_key_and_bad_key(dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("REGRET_TEST_FT_KEY", raising=False)
    with FineTuneAPI(("cancelled",), key=KEY) as api:
        with pytest.raises(BackendError, match=r"\$REGRET_TEST_FT_KEY, which is not set"):
            _fit(api, dataset, tmp_path / "a")
        monkeypatch.setenv("REGRET_TEST_FT_KEY", KEY)
        with pytest.raises(BackendError, match="ftjob-1 cancelled"):
            _fit(api, dataset, tmp_path / "b")
        monkeypatch.setenv("REGRET_TEST_FT_KEY", "sk-wrong")
        with pytest.raises(BackendError, match="fine-tuning API call failed"):
            _fit(api, dataset, tmp_path / "c")
    _no_key_anywhere(tmp_path)
