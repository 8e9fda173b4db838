"""Near-duplicates and benchmark leaks, removed between cleaning and distillation (issue 21).

`dedup_signatures` (per subset) stores what comparing a row needs: a key of its normalized
question, a MinHash of the question's character shingles (datasketch) and of its asking line,
a key of its reference answer as the verifier reads it (answers.py), perceptual hashes of its
image (imagehash) and the image's SHA-256. `deduplicated` (per subset) compares its subset's
signatures with the signatures of every subset materialized so far and with the configured
benchmarks, and keeps `cleaned` minus the duplicates and contaminated rows: the teachers read it.
"""
