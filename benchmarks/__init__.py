"""``resolver bench``: encoder, Triton and end-to-end speed on the local stack; the Milvus index study."""
