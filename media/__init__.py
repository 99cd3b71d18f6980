"""Audio and image evidence: bounded loading, Chromaprint fingerprints, chroma, perceptual hashes.

An adapter beside Kafka, Triton and Milvus: it runs ffmpeg and fpcalc in subprocesses. The
resolution core never imports it; the composition root hands its results to the core.
"""
