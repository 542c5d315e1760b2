"""Bytes in and out: local paths and URIs (`locations`), tables in Parquet, CSV, npz and
TFRecord files of tf.Example (`tables`, `tfrecord`), file digests (`digests`)."""
