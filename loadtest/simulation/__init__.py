"""`photos-simulate` (loadtest/simulate.py): readers with latent tastes engaging with authors of latent quality
through the real API, so a learned feed ranker has something real to find. The latent model is truth.py;
docs/simulation.md documents it."""
