"""The Triton model repository templates (installed as ``dsocr.model_repository``): each folder is one model,
a ``config.pbtxt`` (or ``configs/{cpu,gpu}.pbtxt``) and its ``1/model.py``. ``dsocr repository build`` fills them
in for a checkpoint; they are never served as they stand."""
