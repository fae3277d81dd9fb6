"""Settings of `regret iterate`'s no-argument demo (numeric Transformer, CPU, a few minutes).

Measured (benchmarks/results/rmft_numeric.txt): the bandit's held-out regret falls about
0.2 per iteration at first (15.9 -> ~15.2 in 5 iterations, ~15 CPU s each) and speeds up as
the policy sharpens; the experts mix falls from 12.4 to about 2.4 (below Hedge) in 10
iterations (~6 CPU s each). k/L is 0.3 on the bandit: at or below 1/K the kept rollouts are
mostly lucky blind commitments.
"""

DEMO_SETTINGS = {
    "iterate-bandit": {
        "iterations": 8, "rollouts": 30, "k": 9, "train_instances": 40, "eval_instances": 50, "eval_rollouts": 2,
        "backend_config": {"epochs": 20, "learning_rate": 0.01}, "baselines": ("uniform", "ucb1", "thompson"),
    },
    "iterate-experts": {
        "iterations": 10, "rollouts": 20, "k": 4, "train_instances": 10, "eval_instances": 10, "eval_rollouts": 1,
        "backend_config": {"epochs": 20, "learning_rate": 0.01}, "eval_params": {"play": "policy"},
        "baselines": ("uniform", "hedge", "ftl"),
    },
}
