"""The exercise and the outcome (checks/core/exercise.py, compare.py, outcome.py, chapter.py) on a toy chapter:
comparison order, feedback, structure checks, modes."""

from __future__ import annotations

import json

import pytest
import torch

from torchcourse.checks.core import CheckFailed, Mismatch, Report, Status, compare

from .conftest import vectors as _vectors


@pytest.fixture
def double(chapter):
    return chapter.exercise(
        "q1", "Double it", points=2, reference=lambda x: x * 2, inputs=_vectors,
        hints=["Multiply.", "By two."],
        misconceptions=[(lambda x: x + 2, "You added 2; double means multiply by 2.")],
    )


# --- compare: the order of the checks and what the messages say --------------------------------


def test_compare_accepts_equal_tensors():
    compare(torch.ones(2), torch.ones(2))


@pytest.mark.parametrize(
    ("actual", "needle"),
    [
        ([1.0, 1.0], "expected a torch.Tensor"),
        (torch.ones(3), "wrong shape"),
        (torch.ones(2, dtype=torch.float64), "wrong dtype"),
        (torch.ones(2, device="meta"), "wrong device"),
        (torch.tensor([1.0, float("nan")]), "NaN"),
        (torch.tensor([1.0, 5.0]), "1 of 2 values differ. Check the formula"),
        (torch.tensor([1.0, 1.001]), "1 of 2 values differ. They are close"),
    ],
)
def test_compare_reports_first_difference(actual, needle):
    with pytest.raises(Mismatch, match=needle):
        compare(actual, torch.ones(2))


def test_shape_is_checked_before_dtype():
    with pytest.raises(Mismatch, match="shape"):
        compare(torch.ones(3, dtype=torch.int64), torch.ones(2))


def test_numpy_answer_gets_a_hint():
    np = pytest.importorskip("numpy")
    with pytest.raises(Mismatch, match="NumPy"):
        compare(np.ones(2), torch.ones(2))


def test_value_message_does_not_reveal_expected_values():
    expected = torch.tensor([123.456, 789.012])
    with pytest.raises(Mismatch) as caught:
        compare(torch.zeros(2), expected)
    assert "123.4" not in str(caught.value) and "789" not in str(caught.value)


def test_compare_tuples_names_the_item():
    with pytest.raises(Mismatch, match="item 1: wrong dtype"):
        compare((torch.ones(2), torch.ones(2)), (torch.ones(2), torch.ones(2, dtype=torch.int64)))


def test_compare_python_numbers():
    compare(3, 3)
    with pytest.raises(Mismatch, match="Python number"):
        compare(torch.tensor(3.0), 3.0)
    with pytest.raises(Mismatch, match="value is not"):
        compare(2.0, 3.0)
    with pytest.raises(Mismatch, match="True or False"):
        compare(1, True)


# --- grading a function ------------------------------------------------------------------------


def test_correct_answer_earns_the_points(double):
    outcome = double.grade(lambda x: 2 * x)
    assert (outcome.status, outcome.points, outcome.max_points) == (Status.CORRECT, 2, 2)


def test_hard_coded_answer_fails(double):
    visible = _vectors(torch.Generator().manual_seed(0), "cpu")[0]
    outcome = double.grade(lambda x: visible * 2)
    assert outcome.status is Status.INCORRECT


def test_misconception_gets_specific_feedback(double):
    outcome = double.grade(lambda x: x + 2)
    assert outcome.status is Status.INCORRECT
    assert outcome.message.startswith("You added 2")


def test_feedback_shows_the_smallest_failing_case_and_what_was_returned(double):
    outcome = double.grade(lambda x: x * 3)
    assert "Smallest failing case (hidden test" in outcome.message and "x=tensor([" in outcome.message
    assert "Your function returned: tensor([" in outcome.message
    assert "1.5 times the right one" in outcome.message


def test_in_place_modification_of_input_is_caught(double):
    outcome = double.grade(lambda x: x.mul_(2))
    assert outcome.status is Status.INCORRECT
    assert "changed its input" in outcome.message


def test_memory_sharing_is_demanded(chapter):
    ex = chapter.exercise("q2", "Flip view", points=1, reference=lambda x: x.view(-1, 1), inputs=_vectors,
                          hints=["view"], shares_memory=True)
    assert ex.grade(lambda x: x.view(-1, 1)).status is Status.CORRECT
    copy = ex.grade(lambda x: x.clone().view(-1, 1))
    assert copy.status is Status.INCORRECT and "copy" in copy.message


def test_memory_sharing_is_forbidden(chapter):
    ex = chapter.exercise("q2", "Copy", points=1, reference=lambda x: x.clone(), inputs=_vectors,
                          hints=["clone"], shares_memory=False)
    assert ex.grade(lambda x: x.clone()).status is Status.CORRECT
    shared = ex.grade(lambda x: x)
    assert shared.status is Status.INCORRECT and "shares memory" in shared.message


def test_gradients_are_compared(chapter):
    def leaf(generator, device):
        return (torch.randn(4, generator=generator).to(device).requires_grad_(),)

    ex = chapter.exercise("q3", "Square", points=1, reference=lambda x: x**2, inputs=leaf, hints=["x*x"], grad=True)
    assert ex.grade(lambda x: x * x).status is Status.CORRECT
    detached = ex.grade(lambda x: (x**2).detach())
    assert detached.status is Status.INCORRECT and "autograd graph" in detached.message
    straight_through = ex.grade(lambda x: x + (x**2 - x).detach())  # right values, gradient of identity
    assert straight_through.status is Status.INCORRECT and "gradient of input 0" in straight_through.message


def test_properties_add_rules(chapter):
    def must_be_contiguous(result, case):
        return None if result.is_contiguous() else "Return a contiguous tensor."

    ex = chapter.exercise("q4", "Transpose", points=1, reference=lambda x: torch.stack([x, -x]).t().contiguous(),
                          inputs=_vectors, hints=["t"], properties=[must_be_contiguous])
    assert ex.grade(lambda x: torch.stack([x, -x]).t().contiguous()).status is Status.CORRECT
    outcome = ex.grade(lambda x: torch.stack([x, -x]).t())
    assert outcome.status is Status.INCORRECT and "contiguous" in outcome.message


def test_generator_inputs_are_copied_for_learner_and_reference(chapter):
    def gen_case(generator, device):
        return (torch.Generator().manual_seed(int(torch.randint(0, 100, (1,), generator=generator))),)

    ex = chapter.exercise("q5", "Draw", points=1, reference=lambda g: torch.rand(3, generator=g), inputs=gen_case,
                          hints=["rand"])
    assert ex.grade(lambda g: torch.rand(3, generator=g)).status is Status.CORRECT


# --- learner-facing API and modes --------------------------------------------------------------


def test_hints_are_revealed_one_at_a_time(double):
    assert "Hint 1/2" in str(double.hint())
    assert "Hint 2/2" in str(double.hint())
    assert "No more hints" in str(double.hint())


def test_solution_shows_code(double):
    assert "```python" in str(double.solution())


def test_check_records_and_reports(chapter, double):
    double.check(lambda x: x * 2)
    report = chapter.report()
    assert isinstance(report, Report) and report.score == 2 == report.max_score
    assert "Score: 2/2" in str(report) and "Score: 2/2" in report._repr_html_()


def test_unchecked_exercises_count_as_not_attempted(chapter, double):
    report = chapter.report()
    assert report.outcomes[0].status is Status.NOT_ATTEMPTED and report.score == 0


def test_strict_mode_raises_on_incorrect(double, monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_STRICT", "1")
    with pytest.raises(CheckFailed, match="Incorrect"):
        double.check(lambda x: x * 3)


def test_non_strict_mode_never_raises(double):
    assert double.check(lambda x: 1 / 0).status is Status.INCORRECT


def test_grade_file_receives_every_outcome(double, monkeypatch, tmp_path):
    grade_file = tmp_path / "outcomes.jsonl"
    monkeypatch.setenv("TORCHCOURSE_GRADE_FILE", str(grade_file))
    double.check(...)
    double.check(lambda x: x * 2)
    entries = [json.loads(line) for line in grade_file.read_text().splitlines()]
    assert [e["status"] for e in entries] == ["not attempted", "correct"]
    assert entries[1] | {"message": ""} == {"chapter": "99_toy", "id": "q1", "title": "Double it",
                                            "status": "correct", "message": "", "points": 2, "max_points": 2}


def test_outcome_renders_as_html_and_text(double):
    outcome = double.grade(lambda x: x + 2)
    assert "Incorrect" in str(outcome) and "Incorrect" in outcome._repr_html_()


def test_duplicate_ids_are_refused(chapter, double):
    with pytest.raises(ValueError, match="twice"):
        chapter.exercise("q1", "Again", points=1, reference=lambda x: x, inputs=_vectors, hints=["-"])


def test_a_single_tolerance_is_enough():
    compare(torch.tensor([1.0]), torch.tensor([1.05]), atol=0.1)
    with pytest.raises(Mismatch, match="differ"):
        compare(torch.tensor([1.0]), torch.tensor([1.05]), rtol=0.01)


def test_the_smallest_failing_case_shows_every_tensors_shape(chapter):
    def _big(generator, device):
        return (torch.randn(40, 30, generator=generator).to(device),)

    ex = chapter.exercise("q30", "Double", points=1, reference=lambda x: x * 2, inputs=_big, hints=["-"])
    message = ex.grade(lambda x: x * 3).message
    assert "Shapes: x: tensor(40, 30) torch.float32 on cpu" in message
    assert "Your function returned:" in message and "(tensor(40, 30) torch.float32 on cpu)" in message
