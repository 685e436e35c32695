"""Scores, peer-group ranks, failure deltas and monthly acceptance from the rule results.

  config.py      contracts/scoring.yaml: dimension weights, ranking decimals, acceptance
  arithmetic.py  the score arithmetic on plain data (batch and organisation-day scores,
                 composite, ranks with ties, rank changes, failure deltas, rounding)
  inputs.py      what scoring reads from validation (current runs, counted rule results)
  tables.py      the score tables and their current-scoring views
  store.py       score_date: one scoring of a date, written and committed
  read.py        readers for the pages and e-mails
  acceptance.py  the month's acceptance, with its evidence

The monthly scores and ranks are the dbt mart dq_org_month_score; it ranks by the same rule
as the days (arithmetic.py, dbt/macros/scores.sql).
"""
