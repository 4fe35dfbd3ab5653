"""The QA task's config and examples (questions with their answer index and optional
hard negatives)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tasks.qa.ranking import DEFAULT_KS
from tfapp.core.errors import DataError
from tfapp.core.task_contract import Examples as BaseExamples

HANDOFF_SCORES = ("auto", "softmax", "centroid", "nearest")


@dataclasses.dataclass
class QAConfig:
    mode: str = "retrieval"  # retrieval (dual encoder over the bank) | intent (classifier)
    question_column: str = "question"
    # The answer id (retrieval) or intent / answer-template id (intent) of each question.
    answer_id_column: str = "answer_id"
    # The FAQ bank: one row per answer. Required in retrieval mode; in intent mode it
    # supplies the answer text returned for each intent. None with the built-in sample:
    # tasks/samples/qa_answers.csv.
    answers_file: Optional[str] = None
    answers_id_column: str = "answer_id"
    answers_text_column: str = "answer"
    # Optional column of answer ids that look right but are wrong for the question,
    # separated by '|'; one is sampled per question and epoch as an extra negative.
    hard_negatives_column: Optional[str] = None
    # Intent mode: the class list. None: the answers file's ids, else the training labels.
    intents: Optional[list[str]] = None
    embedding_dim: int = 256  # retrieval projection size
    temperature: float = 0.05  # softmax temperature over cosine similarities
    head_dropout: float = 0.1
    top_k: int = 5  # answers returned by the export
    # The hand-off threshold is the lowest score at which validation answers reach this
    # precision; below it the export sets handoff=true.
    target_precision: float = 0.9
    # How the threshold is calibrated: precision (the target above) | balanced (maximise
    # in-scope answered accuracy + out-of-scope recall; needs out_of_scope_label and
    # out-of-scope questions in validation) | auto (balanced when both exist, else precision).
    threshold_objective: str = "auto"
    # An intent / answer id that means "not something we answer" (e.g. CLINC150's oos):
    # predicting it hands the question off, like a score below the threshold. Test metrics
    # then add in-scope accuracy, out-of-scope recall and in-scope coverage.
    out_of_scope_label: Optional[str] = None
    # The confidence the threshold applies to (intent mode): softmax (the top intent
    # probability) | centroid (cosine similarity to the nearest intent centroid of the
    # training questions' embeddings) | nearest (to the nearest single training question)
    # | auto (nearest in intent mode, softmax in retrieval mode). Embedding distances
    # separated out-of-scope questions better than softmax on both HINT3 bots (docs/qa.md).
    handoff_score: str = "auto"
    recall_ks: list[int] = dataclasses.field(default_factory=lambda: list(DEFAULT_KS))

    def problems(self) -> list[str]:
        return [message for ok, message in [
            (self.mode in ("retrieval", "intent"), "mode must be retrieval or intent"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.embedding_dim >= 1, "embedding_dim must be >= 1"),
            (self.top_k >= 1, "top_k must be >= 1"),
            (0 < self.target_precision <= 1, "target_precision must be in (0, 1]"),
            (self.threshold_objective in ("auto", "precision", "balanced"),
             "threshold_objective must be auto, precision or balanced"),
            (self.threshold_objective != "balanced" or self.out_of_scope_label is not None,
             "threshold_objective=balanced needs qa.out_of_scope_label"),
            (self.handoff_score in HANDOFF_SCORES,
             "handoff_score must be " + ", ".join(HANDOFF_SCORES[:-1]) + " or "
             + HANDOFF_SCORES[-1]),
            (self.mode == "intent" or self.handoff_score in ("auto", "softmax"),
             f"handoff_score={self.handoff_score} needs qa.mode=intent (retrieval scores "
             f"are similarities to the answers already)"),
            (bool(self.recall_ks) and all(k >= 1 for k in self.recall_ks),
             "recall_ks must be positive integers"),
        ] if not ok]


@dataclasses.dataclass
class Examples(BaseExamples):
    questions: list[str]
    answers: np.ndarray  # int index into the bank (retrieval) or the intent list
    negatives: list[list[int]]  # hard-negative bank indices per question (may be empty)
    source: str


# The answer index of a question whose qa.out_of_scope_label is no class of the model:
# evaluation data only, handed off by the threshold.
HANDOFF_ONLY = -1


def in_scope(examples: Examples) -> Examples:
    """The examples whose answer is a class or bank entry (no HANDOFF_ONLY questions)."""
    keep = np.flatnonzero(examples.answers != HANDOFF_ONLY)
    return examples if len(keep) == len(examples) else examples.subset(keep, examples.source)


NEGATIVE_SEPARATOR = "|"


def read_examples(path, rows, p: QAConfig, index: dict[str, int], known: str,
                  handoff_only: bool = False) -> Examples:
    """Validated examples from `rows` (row number, values): every answer and hard negative
    must be in `index` (`known` names it in errors); with `handoff_only`, questions labelled
    qa.out_of_scope_label get HANDOFF_ONLY."""
    questions, answers, negatives = [], np.empty(len(rows), np.int32), []
    for k, (row, values) in enumerate(rows):
        question = values[p.question_column]
        if not question.strip():
            raise DataError(path, "empty question", row, p.question_column)
        answer_id = values[p.answer_id_column].strip()
        if handoff_only and answer_id == p.out_of_scope_label:
            questions.append(question)
            answers[k] = HANDOFF_ONLY
            negatives.append([])
            continue
        if answer_id not in index:
            raise DataError(path, f"answer id '{answer_id}' is not in {known}", row,
                            p.answer_id_column)
        negs = []
        if p.hard_negatives_column:
            for neg in values[p.hard_negatives_column].split(NEGATIVE_SEPARATOR):
                neg = neg.strip()
                if not neg:
                    continue
                if neg not in index:
                    raise DataError(path, f"hard negative '{neg}' is not in {known}", row,
                                    p.hard_negatives_column)
                if neg == answer_id:
                    raise DataError(path, f"hard negative '{neg}' is the question's own "
                                          f"answer", row, p.hard_negatives_column)
                negs.append(index[neg])
        questions.append(question)
        answers[k] = index[answer_id]
        negatives.append(negs)
    return Examples(questions, answers, negatives, str(path))
