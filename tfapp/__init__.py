"""tfapp: fine-tune one shared keras-hub BERT backbone for domain tasks and export for TF Serving."""
import os

# keras-hub must run on TensorFlow: the exported graph tokenises with tensorflow-text ops.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Keep TF's C++ start-up chatter out of the user's progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
