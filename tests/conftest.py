import os

# offline determinism for every test (also set by the Makefile and .ci/run)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

_CHECKOUT = Path(__file__).resolve().parents[1]


def _stray() -> set[str]:
    return {str(p.relative_to(_CHECKOUT)) for p in (_CHECKOUT / "runs").glob("*")} if (_CHECKOUT / "runs").exists() else set()


@pytest.fixture(scope="session", autouse=True)
def nothing_written_into_the_checkout():
    """Tests write into tmp_path only: a run directory appearing in the checkout fails the session."""
    before = _stray()
    yield
    new = _stray() - before
    assert not new, f"tests wrote run directories into the checkout: {sorted(new)}"
