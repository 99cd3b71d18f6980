"""The vector index adapters: Milvus (standalone locally, a cluster in production)."""
