import os

# offline determinism for every test (also set by the Makefile and .ci/run)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# a test's Ray (harness.testing.ray_head) lives on loopback only; Ray reads this when imported
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

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
