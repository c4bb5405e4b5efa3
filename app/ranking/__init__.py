"""Learned feed ranking (docs/ranking.md): the features, the impression log, the model and its serving,
and the offline training job."""
