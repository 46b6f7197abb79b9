"""Notifications out: events become deliveries (events.py), which the retry queue
(retry_queue.py) sends to their targets (targets.py) through a guarded HTTP client
(client.py)."""
