"""The grader (``python -m tools.grade``), in three steps: :mod:`~tools.grading.plan` (which notebooks, whose,
which lesson, which cells), :mod:`~tools.grading.run` (each notebook in a :mod:`~tools.grading.sandbox` of its
own, its cells run by :mod:`~tools.grading.runner`) and :mod:`~tools.grading.report` (gradebook, feedback,
summary). docs/grading.md is the instructor's guide."""
