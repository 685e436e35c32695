"""The quality programme around the scores (upload standard section 8): appeals and their
decisions, waivers, and the monthly acceptance sign-off with its subsidies."""
