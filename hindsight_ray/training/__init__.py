"""What runs inside a trial: the Keras backend (``backend``); the trainable, model and checkpoints move here."""
