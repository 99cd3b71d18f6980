"""Starting the stack locally (Kafka, Triton, Milvus, Jaeger) as plain processes."""
