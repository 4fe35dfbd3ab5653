"""Financial sentiment (and topic) of market news, with stream monitoring: scoring a news
stream with an export, per-window aggregates and alerts when negative opinion surges.

task.py: the Task; stream.py: reading the stream; surge.py: windows and surge detection;
monitor.py: the `python -m tfapp.monitor` scenario."""
from tasks.sentiment.task import SentimentTask

__all__ = ["SentimentTask"]
