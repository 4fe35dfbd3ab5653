"""Customer-service QA: map a question to the right answer or intent (dual-encoder
retrieval or an intent classifier), with a hand-off threshold for unsure answers.

task.py: the Task; model.py: dual encoder and export encoders; answer_bank.py: the FAQ
bank and its serving module; ranking.py: retrieval metrics and threshold calibration;
index.py: re-indexing a new bank into an export (`python -m tfapp.qa_index`)."""
from tasks.qa.task import QATask

__all__ = ["QATask"]
