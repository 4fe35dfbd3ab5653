"""tfapp: fine-tune one shared keras-hub BERT backbone for domain tasks and export for TF Serving."""
import os

# keras-hub must run on TensorFlow: the exported graph tokenises with tensorflow-text ops.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Keep TF's C++ start-up chatter (CPU feature notes, "failed call to cuInit" on machines
# without GPUs) out of the user's progress output; Python exceptions still surface.
# Set TF_CPP_MIN_LOG_LEVEL=0 to see it all when debugging devices.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
