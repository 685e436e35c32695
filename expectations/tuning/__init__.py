"""Advice on the rule base from the accumulated results (upload standard 7.4); it reads the
results and changes nothing.

  config.py   contracts/weight_suggestions.yaml: the heuristics' numbers and reasons
  suggest.py  per rule over a period: organisations and days failed, rows kept out of the
              marts, the indicators it reaches, and a suggested weight with its reason

Apart from scoring/: scoring turns one date's results into published scores, this reads a
period of them to advise the quality officer who edits the weights.
"""
