"""Signal processing: pure functions on arrays (decoding, filters, features, descriptors, images)."""
