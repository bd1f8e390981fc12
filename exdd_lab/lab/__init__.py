"""The lab around the lessons: running the notebooks headlessly, the run report, the regression references.

- :mod:`~exdd_lab.lab.notebooks`: execute a notebook with parameters, record its numbers, show a helper's source;
- :mod:`~exdd_lab.lab.runner`: the main job (``exdd-lab run`` / ``make run``): every notebook into ``runs/<id>/``;
- :mod:`~exdd_lab.lab.report`: ``runs/<id>/report.html``, the page a student or reviewer opens first;
- :mod:`~exdd_lab.lab.references`: the notebooks' reference numbers, their tolerances and chance levels.

Never computes a result of its own: the notebooks call the kit, this package runs and records them.
"""
