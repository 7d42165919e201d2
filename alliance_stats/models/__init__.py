"""Statistical models: meta-analysis (and, in later issues, mixed models, rupture-repair, sequences, PQS)."""
