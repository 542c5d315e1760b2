"""Model files: detect the format once and load it (`load`), rebuild Keras 2 models
(`keras2`), and the Keras vocabulary the rules read (`vocab`)."""
