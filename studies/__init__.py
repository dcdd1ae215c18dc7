"""The studies behind lessons 8, 9 and 10's tables: study code, not student code (nothing in ``utils`` imports it).

* ``harness`` — the one harness: a method spends a budget of finite-element solves on a set of problems and returns
  one result type (:class:`studies.harness.MethodResult`); one budget convention, one timing rule, the methods'
  names and table columns in one place, judging and solves-to-within-1 %;
* ``methods`` — the methods themselves and their controls (SIMP from a start, best of b, retrieval, latent and pixel
  searches, two-stage methods, an untrained decoder with Adam), each a :class:`studies.harness.Method`;
* ``cvae_study`` — lesson 8's study (the equal-compute comparison, the own-volume rule, cost and break-even);
* ``latent_study`` — lesson 9's study (its methods beside their controls, the hyperparameters chosen on validation);
* ``prior_study`` — lesson 10's section 4 (a conditional diffusion prior against the CVAE's learned prior);
* ``published_methods`` — lesson 9's cited methods reproduced with their controls (Hoyer et al.'s neural
  reparametrisation under L-BFGS against pixels; CMA-ES in the CVAE's latent against coarse pixels), run by
  ``make evaluate-published`` on a subset of the test problems.

Lessons call these functions on a subset of the problems; ``make evaluate-cvae``, ``make evaluate-latent`` and
``make evaluate-priors`` call the same functions on every problem, so each published figure has one code path.
"""
