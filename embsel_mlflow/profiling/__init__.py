"""Data profiling (``embsel profile``): understand a dataset before any model runs.

- :mod:`.sources` reads a dataset's tables (or one raw table) through the data layer;
- :mod:`.columns` detects what each column holds; :mod:`.text_stats`, :mod:`.duplicates`,
  :mod:`.language` describe text columns; :mod:`.tokens` counts lengths per candidate model;
- :mod:`.tasks` checks labels, pairs, retrieval qrels and split leakage; :mod:`.rules` turns
  figures into :mod:`.findings`; :mod:`.report` renders the HTML report;
- :mod:`.modality` is the guard ``evaluate`` and ``select`` run before embedding anything;
- :mod:`.profile` puts them together (``profile_tables``).
"""
