"""The agent-quality regression gate (`regret check`): a run against a stored baseline.

    from harness.check import Baseline, CheckSettings, check_run, write_baseline

    write_baseline("runs/accepted", "regret-baseline.json")      # once, from an accepted run
    report = check_run("runs/new", "regret-baseline.json")        # in CI
    print(report.table()); assert report, report.failures

See `harness._check` for the statistics (one-sided paired or Welch t-tests with Holm's
correction, a minimum effect, ceilings, invalid-rate and cost bounds) and the file format.
"""

from harness._check import (
    BASELINE_FORMAT,
    BASELINE_VERSION,
    Baseline,
    BaselineError,
    Check,
    CheckReport,
    CheckRow,
    CheckSettings,
    Sample,
    TestResult,
    adjust_pvalues,
    check_run,
    compare,
    compare_samples,
    merge_settings,
    paired_test,
    parse_fail_above,
    plan_hash,
    welch_test,
    write_baseline,
)

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "Baseline",
    "BaselineError",
    "Check",
    "CheckReport",
    "CheckRow",
    "CheckSettings",
    "Sample",
    "TestResult",
    "adjust_pvalues",
    "check_run",
    "compare",
    "compare_samples",
    "merge_settings",
    "paired_test",
    "parse_fail_above",
    "plan_hash",
    "welch_test",
    "write_baseline",
]
