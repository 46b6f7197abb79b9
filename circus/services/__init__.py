"""The operations every front end calls (API, Hydra's URLs, the dashboard, sr.ht's API):
a front end parses its request, calls one of these, and shapes the answer."""
