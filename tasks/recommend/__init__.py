"""Recommendation text scoring: score candidate items' text against a user's history.

data.py: items and impressions; model.py: item tower, user pooling and scorer;
serving.py: the exported scoring module; metrics.py: per-impression ranking metrics;
task.py: the Task."""
from tasks.recommend.task import RecommendTask

__all__ = ["RecommendTask"]
