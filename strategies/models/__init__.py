"""The model zoo (:mod:`strategies.models.zoo`): LSTM, CNN-LSTM, Transformer (torch) and a
gradient-boosting baseline. Importing this package loads none of them, so the model's
configuration (``ModelSpec``) is read without torch."""
