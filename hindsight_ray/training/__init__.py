"""What runs inside a trial: the Ray Tune trainable, the Keras model, its checkpoints, and the Keras
backend (TensorFlow, JAX or PyTorch) in trials and in the driver."""
