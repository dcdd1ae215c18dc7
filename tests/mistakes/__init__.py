"""The mistake catalogue: for every exercise, plausible wrong answers its self-check must reject and correct
answers written differently from the solutions that it must accept (tests/test_checks_reject_mistakes.py)."""
