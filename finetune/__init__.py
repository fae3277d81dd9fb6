"""From runs to better models: regret-ranked datasets, fine-tuning backends and the RMFT loop."""
