"""What an evaluator returns."""

from pydantic import BaseModel, ConfigDict


class Score(BaseModel):
    """The result of one evaluator on one trace.

    ``passed`` is None when the evaluator could not decide (``error`` says why)
    or when the case gave it nothing to check (``skipped``).
    """

    model_config = ConfigDict(frozen=True)

    evaluator: str
    value: float | None = None
    passed: bool | None = None
    label: str = ""
    explanation: str = ""
    error: str | None = None
    skipped: bool = False

    @classmethod
    def failure(cls, evaluator: str, error: str) -> "Score":
        return cls(evaluator=evaluator, error=error, label="error")

    @classmethod
    def skip(cls, evaluator: str, why: str) -> "Score":
        return cls(evaluator=evaluator, skipped=True, label="skipped", explanation=why)
