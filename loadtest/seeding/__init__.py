"""`photos-seed`: a deterministic data set for load tests (loadtest/seed.py is the command).

- `model`: the seeded world as plain data, a pure function of the parameters, the seed and a time anchor;
- `statements`: the repositories' and stream workers' own prepared statements, as batchable writes;
- `writer`: unlogged batches of those writes, grouped by partition, with bounded concurrency;
- `media`: a small pool of images processed by the project's pipeline, linked under every post's keys;
- `load`: the model written as the API and the stream workers would have left it;
- `verify`: sampled counts, feeds and trays checked against the truth tables;
- `output`: `credentials.jsonl` and `dataset.json` for the load generators.

docs/seeding.md describes the distributions, the derived data and the timings.
"""
