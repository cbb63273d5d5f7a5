"""The state db (``db``: schema, records, migrations) and the dataset folder lock (``lock``).

The one place that speaks SQL. May import: ``errors``, ``tree``.
"""
