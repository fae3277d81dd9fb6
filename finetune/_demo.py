"""Settings of `regret iterate`'s no-argument demo (numeric Transformer, CPU, a few minutes)."""

DEMO_SETTINGS = {
    "iterate-bandit": {
        "iterations": 6, "rollouts": 30, "k": 9, "train_instances": 40, "eval_instances": 50, "eval_rollouts": 2,
        "backend_config": {"epochs": 10, "learning_rate": 0.005}, "baselines": ("uniform", "ucb1", "thompson"),
    },
    "iterate-experts": {
        "iterations": 6, "rollouts": 20, "k": 4, "train_instances": 10, "eval_instances": 10, "eval_rollouts": 1,
        "backend_config": {"epochs": 10, "learning_rate": 0.005}, "eval_params": {"play": "policy"},
        "baselines": ("uniform", "hedge", "ftl"),
    },
}
