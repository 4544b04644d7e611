"""Read queries for the roster API.

Each query returns JSON built by Postgres from an explicit list of fields (`shapes.py`): the
API passes it through without decoding it, and nothing but the listed fields can reach a
response. Lists use keyset pagination on each row's `cursor` column.
"""
