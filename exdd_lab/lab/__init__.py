"""The lab around the lessons: running the notebooks headlessly, the run report, the regression references.

- :mod:`~exdd_lab.lab.notebooks`: execute a notebook with parameters, record its numbers, show a helper's source;
- :mod:`~exdd_lab.lab.runner`: the main job (``exdd-lab run`` / ``make run``): every notebook into ``runs/<id>/``;
- :mod:`~exdd_lab.lab.report`: ``runs/<id>/report.html``, the page a student or reviewer opens first;
- :mod:`~exdd_lab.lab.references`: the notebooks' reference numbers, their tolerances and chance levels;
- :mod:`~exdd_lab.lab.exercises`, :mod:`~exdd_lab.lab.checks`: the exercises' checks — the student's function
  against the kit's own on seeded inputs, with a hint, never the answer;
- :mod:`~exdd_lab.lab.student_versions`: ``exdd-lab lessons``, the notebooks with the solutions removed (nbgrader);
- :mod:`~exdd_lab.lab.book`: ``make book``, the executed lessons as an offline HTML book (Sphinx + myst-nb).

Never computes a result of its own: the notebooks and the checks call the kit, this package runs and records them.
"""
