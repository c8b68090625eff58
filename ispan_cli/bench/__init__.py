"""``ispan benchmark``: decode, preprocess, model and end-to-end speed per runtime, measured."""
