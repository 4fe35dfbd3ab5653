"""Serving: atomic, verified SavedModel exports in TF Serving's layout, what the stock model
server needs beyond the SavedModel (method names, op allow-list, warmup), and its config."""
